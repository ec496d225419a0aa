"""Logit-matching losses shared by every method (student objective and adversarial terms)."""
import torch
import torch.nn.functional as F
from torch import nn

from mmdfkd.registry import MODELS


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


def _divergence(name: str):
    if name not in _DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(_DIVERGENCES)}, got '{name}'")
    return _DIVERGENCES[name]


@MODELS.register_module()
class KLDivergenceLoss(nn.Module):
    """Hinton KD loss: ``tau^2 * KL(teacher || student)`` on temperature-softened logits.

    Args:
        tau (float): Temperature.
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, tau: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.tau = tau
        self.loss_weight = loss_weight

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * kl_divergence(student_logits, teacher_logits,
                                                self.tau).mean()


@MODELS.register_module()
class L1LogitLoss(nn.Module):
    """Mean absolute error between student and teacher logits (DFAD).

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * l1_logit_distance(student_logits, teacher_logits).mean()


@MODELS.register_module()
class MSELogitLoss(nn.Module):
    """Mean squared error between student and teacher logits (CPSC-DFKD's IKD term for the
    student; the generator maximises it through ``AdversarialDisagreementLoss('mse')``).

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        return self.loss_weight * mse_logit_distance(student_logits, teacher_logits).mean()


@MODELS.register_module()
class AdversarialDisagreementLoss(nn.Module):
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
        super().__init__()
        self.divergence = _divergence(divergence)
        self.divergence_name = divergence
        self.tau = tau
        self.agree_only = agree_only
        self.loss_weight = loss_weight

    def forward(self, student_logits: torch.Tensor,
                teacher_logits: torch.Tensor) -> torch.Tensor:
        if self.divergence_name == 'kl':
            per_sample = self.divergence(student_logits, teacher_logits, self.tau)
        else:
            per_sample = self.divergence(student_logits, teacher_logits)
        if self.agree_only:
            mask = (student_logits.argmax(1) == teacher_logits.argmax(1)).float()
            per_sample = per_sample * mask
        return -self.loss_weight * per_sample.mean()
