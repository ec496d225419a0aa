"""Class-balanced target labels for synthesizers that invert the teacher per class."""
import torch
from torch import nn


class BalancedLabelSampler(nn.Module):
    """Labels that cycle through the classes across calls, shuffled within each batch, so
    every class gets the same number of synthetic samples over a run.

    The position in the cycle is the module's extra state, so checkpoints carry it and a
    resumed run continues the cycle (it restarted at class 0, so with a batch size that is
    not a multiple of the class count the low classes got more targets after each resume).

    Args:
        num_classes (int): Number of teacher classes.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self._next = 0

    def forward(self, n: int, device: torch.device | str = 'cpu') -> torch.Tensor:
        """``n`` labels continuing the class cycle, shuffled, on ``device``."""
        targets = (torch.arange(n) + self._next) % self.num_classes
        self._next = (self._next + n) % self.num_classes
        return targets[torch.randperm(n)].to(device)

    def get_extra_state(self) -> dict:
        """The cycle position, saved in checkpoints."""
        return {'next_class': self._next}

    def set_extra_state(self, state: dict) -> None:
        """Continue the cycle where the checkpoint left it."""
        self._next = int(state['next_class']) % self.num_classes
