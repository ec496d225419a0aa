"""Teacher-only generator objectives of DAFL (Chen et al., ICCV 2019)."""
import torch
import torch.nn.functional as F

from mmdfkd.registry import MODELS
from .base import WeightedLoss


@MODELS.register_module()
class OneHotLoss(WeightedLoss):
    """Cross-entropy of the teacher's logits against their own arg-max (confident samples).

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def forward(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Weighted cross-entropy of (N, C) teacher logits against their own arg-max."""
        pseudo_labels = teacher_logits.argmax(dim=1).detach()
        return self.loss_weight * F.cross_entropy(teacher_logits, pseudo_labels)


@MODELS.register_module()
class InformationEntropyLoss(WeightedLoss):
    """Negative entropy of the batch-averaged teacher prediction.

    Minimising it spreads the batch over all classes; its minimum is ``-log(num_classes)``
    for a perfectly class-balanced batch.

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def forward(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        """Weighted negative entropy of the batch mean of softmax((N, C) teacher logits)."""
        mean_prob = F.softmax(teacher_logits, dim=1).mean(dim=0)
        neg_entropy = (mean_prob * torch.log(mean_prob.clamp_min(1e-12))).sum()
        return self.loss_weight * neg_entropy


@MODELS.register_module()
class ActivationLoss(WeightedLoss):
    """Negative mean L1 norm of the teacher's penultimate features (rewards strong activation).

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Weighted negative mean absolute activation of (N, ...) teacher features."""
        return -self.loss_weight * features.abs().flatten(1).mean()
