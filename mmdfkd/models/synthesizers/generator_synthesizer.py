"""Generator-based synthesis with configurable teacher/adversarial objectives."""
from typing import TYPE_CHECKING

import torch
from mmengine.optim import OptimWrapper
from torch import nn

from mmdfkd.registry import MODELS
from .base import BaseSynthesizer

if TYPE_CHECKING:
    from mmdfkd.models.algorithms import DataFreeDistiller


@MODELS.register_module()
class GeneratorSynthesizer(BaseSynthesizer):
    """Train a generator ``G(z)`` whose samples the student learns from.

    The generator objective is the sum of whichever terms are configured, which covers
    DAFL (``onehot`` + ``entropy`` + ``activation``), DFAD (``adversarial`` with L1), ZSKT
    (``adversarial`` with KL) and their BN-regularised variants (``bn``).

    Args:
        generator (dict): Generator config, e.g. ``DCGANGenerator``.
        batch_size (int): Images per generator update.
        onehot (dict, optional): ``OneHotLoss`` on the teacher logits.
        entropy (dict, optional): ``InformationEntropyLoss`` on the teacher logits.
        activation (dict, optional): ``ActivationLoss`` on the teacher's penultimate features.
        bn (dict, optional): ``BNStatisticsLoss`` against the teacher's BN running statistics.
        adversarial (dict, optional): ``AdversarialDisagreementLoss`` between student and
            teacher logits (the generator seeks samples the student gets wrong).
    """

    TERMS = ('onehot', 'entropy', 'activation', 'bn', 'adversarial')

    def __init__(self, generator: dict, batch_size: int = 256, onehot: dict | None = None,
                 entropy: dict | None = None, activation: dict | None = None,
                 bn: dict | None = None, adversarial: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.generator = MODELS.build(generator)
        self.batch_size = batch_size
        terms = dict(onehot=onehot, entropy=entropy, activation=activation, bn=bn,
                     adversarial=adversarial)
        if all(cfg is None for cfg in terms.values()):
            raise ValueError('GeneratorSynthesizer needs at least one objective; set one of '
                             f'{list(self.TERMS)} in model.synthesizer.')
        self.losses = nn.ModuleDict(
            {name: MODELS.build(cfg) for name, cfg in terms.items() if cfg is not None})

    def bind(self, teacher: nn.Module) -> None:
        if 'bn' in self.losses:
            self.losses['bn'].bind(teacher)

    def _generate(self, batch_size: int) -> torch.Tensor:
        device = next(self.generator.parameters()).device
        z = torch.randn(batch_size, self.generator.latent_dim, device=device)
        return self.generator(z)

    def synthesize(self, distiller: 'DataFreeDistiller',
                   optim_wrapper: OptimWrapper | None) -> dict[str, torch.Tensor]:
        if optim_wrapper is None:
            raise ValueError("GeneratorSynthesizer needs optim_wrapper['synthesizer'].")
        images = self._generate(self.batch_size)
        need_features = 'activation' in self.losses
        t_logits, t_feats = distiller.teacher_forward(images, with_features=need_features)
        losses = {}
        if 'onehot' in self.losses:
            losses['loss_onehot'] = self.losses['onehot'](t_logits)
        if 'entropy' in self.losses:
            losses['loss_entropy'] = self.losses['entropy'](t_logits)
        if 'activation' in self.losses:
            losses['loss_activation'] = self.losses['activation'](t_feats)
        if 'bn' in self.losses:
            losses['loss_bn'] = self.losses['bn']()
        if 'adversarial' in self.losses:
            s_logits = distiller.student_forward(images)
            losses['loss_adv'] = self.losses['adversarial'](s_logits, t_logits)
        self.step(optim_wrapper, sum(losses.values()))
        return {k: v.detach() for k, v in losses.items()}

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        return self._generate(batch_size)
