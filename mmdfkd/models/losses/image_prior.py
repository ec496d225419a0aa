"""Image priors used by model inversion (DeepInversion)."""
import torch

from mmdfkd.registry import MODELS
from .base import WeightedLoss


@MODELS.register_module()
class TotalVariationLoss(WeightedLoss):
    """Mean squared (``p=2``) or absolute (``p=1``) difference of neighbouring pixels.

    Args:
        p (int): 1 or 2.
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, p: int = 2, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        if p not in (1, 2):
            raise ValueError(f'TotalVariationLoss p must be 1 or 2, got {p}')
        self.p = p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Weighted mean squared (``p=2``) or absolute (``p=1``) neighbour difference of
        (N, C, H, W) images, over rows plus over columns.
        """
        dh = images[..., 1:, :] - images[..., :-1, :]
        dw = images[..., :, 1:] - images[..., :, :-1]
        if self.p == 1:
            return self.loss_weight * (dh.abs().mean() + dw.abs().mean())
        return self.loss_weight * (dh.pow(2).mean() + dw.pow(2).mean())
