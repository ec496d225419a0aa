"""Class-balanced target labels for synthesizers that invert the teacher per class."""
import torch


class BalancedLabelSampler:
    """Labels that cycle through the classes across calls, shuffled within each batch, so
    every class gets the same number of synthetic samples over a run.

    Args:
        num_classes (int): Number of teacher classes.
    """

    def __init__(self, num_classes: int) -> None:
        if num_classes < 1:
            raise ValueError(f'num_classes must be >= 1, got {num_classes}')
        self.num_classes = num_classes
        self._next = 0

    def __call__(self, n: int, device: torch.device | str = 'cpu') -> torch.Tensor:
        targets = (torch.arange(n) + self._next) % self.num_classes
        self._next = (self._next + n) % self.num_classes
        return targets[torch.randperm(n)].to(device)
