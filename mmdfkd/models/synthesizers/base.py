"""Synthesizer interface: the part of a data-free method that makes the training images."""
from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING

import torch
from mmengine import dist
from mmengine.model import BaseModule
from mmengine.optim import OptimWrapper
from torch import nn

if TYPE_CHECKING:
    from mmdfkd.models.algorithms import DataFreeDistiller


class BaseSynthesizer(BaseModule, metaclass=ABCMeta):
    """Base class of synthesizers (split as in the ``datafree`` toolbox).

    * :meth:`synthesize` improves the synthesis state by one step against the teacher (and,
      for adversarial methods, the student) and returns its losses for logging;
    * :meth:`sample` returns a batch of images for the student's update, without gradients.

    Images live in the teacher's *normalised* input space.
    """

    def bind(self, teacher: nn.Module) -> None:
        """Attach anything that observes the teacher (e.g. BN-statistics hooks)."""

    def set_work_dir(self, work_dir: str) -> None:
        """Called by the training loop with the run's work dir (pool-based synthesizers keep
        their files there)."""

    @abstractmethod
    def synthesize(self, distiller: 'DataFreeDistiller',
                   optim_wrapper: OptimWrapper | None) -> dict[str, torch.Tensor]:
        """One synthesis update; returns named losses (already weighted)."""

    @abstractmethod
    def sample(self, batch_size: int) -> torch.Tensor:
        """A batch of synthetic images for the student, without gradients."""

    def step(self, optim_wrapper: OptimWrapper, loss: torch.Tensor) -> None:
        """Backward + update, averaging gradients over ranks when distributed.

        Synthesizers run through their unwrapped module (their methods are not ``forward``),
        so DDP's own gradient hook never fires; averaging here keeps ranks' copies equal.
        """
        optim_wrapper.backward(loss)
        if dist.get_world_size() > 1:
            for p in self.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, op='mean')
        optim_wrapper.step()
        optim_wrapper.zero_grad()
