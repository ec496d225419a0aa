"""The part every loss term shares: a checked ``loss_weight`` that scales it."""
import math

from torch import nn


def check_loss_weight(loss_weight: float, owner: str) -> float:
    """A loss weight multiplies a tensor, so it must be a finite real number.

    A quoted number (``loss_weight='0.1'`` in a config file) or a NaN would otherwise build
    and fail only at the first iteration, with an error that names no loss.
    """
    if (not isinstance(loss_weight, (int, float)) or isinstance(loss_weight, bool)
            or not math.isfinite(loss_weight)):
        raise ValueError(f'{owner} loss_weight must be a finite number (0 switches the term '
                         f'off), got {loss_weight!r}')
    return float(loss_weight)


class WeightedLoss(nn.Module):
    """Base of the registered losses: stores ``loss_weight``, the term's multiplier.

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = check_loss_weight(loss_weight, type(self).__name__)
