"""Logit-matching losses shared by every method (student objective and adversarial terms)."""
import torch
import torch.nn.functional as F

from mmdfkd.registry import MODELS
from .base import WeightedLoss


def kl_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  tau: float = 1.0) -> torch.Tensor:
    """Per-sample ``tau^2 * KL(softmax(t/tau) || softmax(s/tau))``, shape (N,)."""
    log_p_s = F.log_softmax(student_logits / tau, dim=1)
    log_p_t = F.log_softmax(teacher_logits / tau, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1) * tau**2


def l1_logit_distance(student_logits: torch.Tensor,
                      teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample mean absolute logit difference, shape (N,) (DFAD's discrepancy)."""
    return (student_logits - teacher_logits).abs().mean(dim=1)


def mse_logit_distance(student_logits: torch.Tensor,
                       teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared logit difference, shape (N,) (CPSC-DFKD's IKD term)."""
    return (student_logits - teacher_logits).pow(2).mean(dim=1)


_DIVERGENCES = {'kl': kl_divergence, 'l1': l1_logit_distance, 'mse': mse_logit_distance}


def check_temperature(tau: float, owner: str) -> float:
    """A temperature divides the logits, so it must be a positive number."""
    if not isinstance(tau, (int, float)) or isinstance(tau, bool) or tau <= 0:
        raise ValueError(f'{owner} tau must be a temperature > 0 (it divides the logits; '
                         f'1 is plain softmax, KD often uses 1-4), got {tau!r}')
    return float(tau)


def _divergence(name: str):
    if name not in _DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(_DIVERGENCES)}, got '{name}'")
    return _DIVERGENCES[name]


@MODELS.register_module()
class KLDivergenceLoss(WeightedLoss):
    """Hinton KD loss: ``tau^2 * KL(teacher || student)`` on temperature-softened logits.

    Args:
        tau (float): Temperature.
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.tau = check_temperature(tau, 'KLDivergenceLoss')

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """Weighted batch mean of the per-sample KD term; both logits are (N, C)."""
        return self.loss_weight * kl_divergence(student_logits, teacher_logits,
                                                self.tau).mean()


def decoupled_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                 tau: float = 4.0, alpha: float = 1.0, beta: float = 8.0) -> torch.Tensor:
    """Per-sample decoupled KD (Zhao et al., CVPR 2022), shape (N,).

    ``alpha * TCKD + beta * NCKD``: TCKD is the binary KL of "target class vs the rest", NCKD
    the KL between the distributions over the non-target classes only, both at temperature
    ``tau`` and scaled by ``tau^2``. Data-free, the target class is the teacher's top-1. With
    ``alpha = beta = 1`` the sum is not plain KD: plain KD weights NCKD by ``1 - p_t(target)``,
    which is what lets a confident teacher's non-target knowledge vanish (the paper's point).
    """
    target = teacher_logits.argmax(dim=1, keepdim=True)
    mask = torch.zeros_like(student_logits, dtype=torch.bool).scatter_(1, target, True)
    p_s = F.softmax(student_logits / tau, dim=1)
    p_t = F.softmax(teacher_logits / tau, dim=1)
    eps = torch.finfo(p_s.dtype).tiny
    s_target = p_s.gather(1, target).squeeze(1)
    t_target = p_t.gather(1, target).squeeze(1)
    binary_s = torch.stack([s_target, 1 - s_target], dim=1).clamp_min(eps)
    binary_t = torch.stack([t_target, 1 - t_target], dim=1).clamp_min(eps)
    tckd = (binary_t * (binary_t.log() - binary_s.log())).sum(dim=1)
    # A large negative offset on the target logit leaves a softmax over the other classes.
    offset = 1000.0 * mask
    log_q_s = F.log_softmax(student_logits / tau - offset, dim=1)
    log_q_t = F.log_softmax(teacher_logits / tau - offset, dim=1)
    nckd = (log_q_t.exp() * (log_q_t - log_q_s)).masked_fill(mask, 0.0).sum(dim=1)
    return (alpha * tckd + beta * nckd) * tau**2


def standardize_logits(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Z-score each sample's logits (zero mean, unit standard deviation over the classes)."""
    return (logits - logits.mean(dim=1, keepdim=True)) / (logits.std(dim=1, keepdim=True) + eps)


@MODELS.register_module()
class DecoupledKDLoss(WeightedLoss):
    """Decoupled knowledge distillation (DKD, Zhao et al., CVPR 2022) on teacher logits.

    The target class of each sample is the teacher's top-1 (no ground truth exists data-free).

    Args:
        tau (float): Temperature (the paper's 4).
        alpha (float): Weight of the target-class term (TCKD).
        beta (float): Weight of the non-target-class term (NCKD; the paper's 8 on CIFAR).
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, tau: float = 4.0, alpha: float = 1.0, beta: float = 8.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.tau = check_temperature(tau, 'DecoupledKDLoss')
        self.alpha, self.beta = alpha, beta

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """Weighted batch mean of :func:`decoupled_kd`; both logits are (N, C)."""
        return self.loss_weight * decoupled_kd(student_logits, teacher_logits, self.tau,
                                               self.alpha, self.beta).mean()


@MODELS.register_module()
class StandardizedKLLoss(WeightedLoss):
    """KD on z-scored logits (logit standardisation, Sun et al., CVPR 2024).

    Both models' logits are standardised per sample before the temperature-softened KL, so
    the student matches the relations between the teacher's logits, not their scale (a small
    student need not reach a large teacher's logit range).

    Args:
        tau (float): Temperature applied to the standardised logits.
        loss_weight (float): Multiplier of the loss (the paper scales it up, e.g. 9).
    """

    def __init__(self, tau: float = 2.0, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.tau = check_temperature(tau, 'StandardizedKLLoss')

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """Weighted batch mean of KD on the per-sample standardised (N, C) logits."""
        return self.loss_weight * kl_divergence(standardize_logits(student_logits),
                                                standardize_logits(teacher_logits),
                                                self.tau).mean()


@MODELS.register_module()
class L1LogitLoss(WeightedLoss):
    """Mean absolute error between student and teacher logits (DFAD).

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """Weighted batch mean of the per-sample L1 logit distance; both logits are (N, C)."""
        return self.loss_weight * l1_logit_distance(student_logits, teacher_logits).mean()


@MODELS.register_module()
class MSELogitLoss(WeightedLoss):
    """Mean squared error between student and teacher logits (CPSC-DFKD's IKD term for the
    student; the generator maximises it through ``AdversarialDisagreementLoss('mse')``).

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """Weighted batch mean of the per-sample squared logit distance; both logits are (N, C)."""
        return self.loss_weight * mse_logit_distance(student_logits, teacher_logits).mean()


@MODELS.register_module()
class AdversarialDisagreementLoss(WeightedLoss):
    """Negative student-teacher divergence: minimising it makes samples the two disagree on.

    Used by synthesizers in the adversarial game (DFAD: L1, ZSKT: KL; Fast-DFKD and DiffDFKD
    restrict it to samples where both predict the same class).

    Args:
        divergence (str): ``'l1'``, ``'kl'`` or ``'mse'``.
        tau (float): Temperature for ``'kl'``.
        agree_only (bool): Only count samples whose student and teacher top-1 agree.
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, divergence: str = 'l1', tau: float = 1.0, agree_only: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        self.divergence = _divergence(divergence)
        self.divergence_name = divergence
        self.tau = check_temperature(tau, type(self).__name__)
        self.agree_only = agree_only

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        """Minus the weighted batch mean of the divergence (only agreeing samples count with
        ``agree_only``; the others add zero to the mean).
        """
        if self.divergence_name == 'kl':
            per_sample = self.divergence(student_logits, teacher_logits, self.tau)
        else:
            per_sample = self.divergence(student_logits, teacher_logits)
        if self.agree_only:
            mask = (student_logits.argmax(1) == teacher_logits.argmax(1)).float()
            per_sample = per_sample * mask
        return -self.loss_weight * per_sample.mean()
