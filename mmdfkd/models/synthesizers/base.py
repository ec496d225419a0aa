"""Synthesizer interface: the part of a data-free method that makes the training images."""
from abc import ABCMeta, abstractmethod
from typing import TYPE_CHECKING

import os.path as osp

import torch
from mmengine import dist
from mmengine.model import BaseModule
from mmengine.optim import OptimWrapper
from torch import nn

if TYPE_CHECKING:
    from mmdfkd.models.algorithms import DataFreeDistiller

from mmdfkd.engine.optimizers.mixed_precision import scale_like_backward
from mmdfkd.registry import MODELS


class BaseSynthesizer(BaseModule, metaclass=ABCMeta):
    """Base class of synthesizers (split as in the ``datafree`` toolbox).

    * :meth:`synthesize` improves the synthesis state by one step against the teacher (and,
      for adversarial methods, the student) and returns its losses for logging;
    * :meth:`sample` returns a batch of images for the student's update, without gradients.

    Images live in the teacher's *normalised* input space.

    ``method_name`` names the method(s) in error messages; ``required_access`` is the least
    teacher access the synthesizer works with (checked when the algorithm is built).
    """

    method_name: str = 'this synthesizer'
    required_access: str = 'white-box'
    # The config keys that set ``image_shape`` and ``num_classes`` (for build-time errors).
    image_shape_key: str = 'model.synthesizer.image_shape'
    num_classes_key: str = 'model.synthesizer.num_classes'
    # Whether the student runs in eval mode inside synthesize() (its adversarial term then
    # uses, and does not move, the student's BN running statistics). The model-inversion
    # references put it there (DeepInversion's "net_student.eval()", the datafree toolbox's
    # CMI / Fast-DFKD); the generator references (DFAD, ZSKT) keep it training.
    student_in_eval_mode: bool = False
    # Whether ``--amp`` runs synthesize() under the synthesizer wrapper's autocast. Only for
    # synthesizers whose every update goes through that wrapper's scaled backward (the
    # generators); pixel and inner-loop optimisers keep float32, where float16 gradients
    # without loss scaling would underflow.
    autocast_synthesis: bool = False

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

    def sample_labelled(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images and the class each was synthesised for (``None`` when the synthesizer
        has no such labels); the student's pseudo-label loss uses them."""
        return self.sample(batch_size), None

    def bind_student(self, student: nn.Module, teacher: nn.Module) -> None:
        """Attach anything that needs both models (e.g. projections sized by their
        features); called once the student exists."""

    def step(self, optim_wrapper: OptimWrapper, loss: torch.Tensor) -> None:
        """Backward + update, averaging gradients over ranks when distributed.

        Synthesizers run through their unwrapped module (their methods are not ``forward``),
        so DDP's own gradient hook never fires; averaging here keeps ranks' copies equal.
        """
        optim_wrapper.backward(loss)
        self.step_with_grads(optim_wrapper)

    def step_with_grads(self, optim_wrapper: OptimWrapper, scaled: bool = True) -> None:
        """Update from the ``.grad`` fields already set (averaged over ranks first);
        parameters without a gradient are left alone. ``scaled=False`` says the gradients
        did not come through ``optim_wrapper.backward`` (a plain ``loss.backward()``, a meta
        gradient), so under ``--amp`` they are first scaled as its ``step()`` expects."""
        if not scaled:
            scale_like_backward(optim_wrapper)
        if dist.get_world_size() > 1:
            for p in self.parameters():
                if p.grad is not None:
                    dist.all_reduce(p.grad, op='mean')
        optim_wrapper.step()
        optim_wrapper.zero_grad()


class GeneratedImageShape:
    """``image_shape`` of a synthesizer whose images come from ``self.generator`` (a
    ``DCGANGenerator`` or ``PriorResidualGenerator``): ``(channels, img_size, img_size)``, so
    the algorithm's build-time check of image shape and class count covers generator methods
    too, and probe forwards are sized the same way everywhere."""

    generator: nn.Module
    image_shape_key = "model.synthesizer.generator's (channels, img_size, img_size)"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(channels, img_size, img_size)`` of the generator's output."""
        return (self.generator.channels, self.generator.img_size, self.generator.img_size)


class PooledSynthesizer(BaseSynthesizer):
    """A synthesizer whose :meth:`synthesize` adds batches to a :class:`SyntheticDataPool`
    (on disk in ``<work_dir>/synthetic_pool``) and whose :meth:`sample` draws from it.

    Args:
        pool (dict, optional): ``SyntheticDataPool`` config; default settings when not given.
    """

    student_in_eval_mode = True

    def __init__(self, pool: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.pool = MODELS.build(pool or dict(type='SyntheticDataPool'))
        # Follows the module across devices, so samples land where the models are.
        self.register_buffer('_device_probe', torch.zeros(0), persistent=False)

    def set_work_dir(self, work_dir: str) -> None:
        """Keep the pool's files in ``<work_dir>/synthetic_pool``."""
        self.pool.set_root(osp.join(work_dir, 'synthetic_pool'))

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        """``batch_size`` pooled images (uniformly drawn) on the synthesizer's device."""
        images, _ = self.pool.sample(batch_size, device=self._device_probe.device)
        return images
