"""Generator-based synthesis with configurable teacher/adversarial objectives."""
import os.path as osp
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from torch import nn

from mmdfkd.models.utils import (BalancedLabelSampler, check_step_sizes,
                                 classifier_logits_and_features)
from mmdfkd.registry import MODELS
from .base import BaseSynthesizer, GeneratedImageShape
from .generator import sample_latent

if TYPE_CHECKING:
    from mmdfkd.models.algorithms import DataFreeDistiller


@MODELS.register_module()
class GeneratorSynthesizer(GeneratedImageShape, BaseSynthesizer):
    """Train a generator ``G(z)`` (or ``G(z, y)``) whose samples the student learns from.

    The generator objective is the sum of whichever terms are configured, which covers
    DAFL (``onehot`` + ``entropy`` + ``activation``), DFAD (``adversarial`` with L1), ZSKT
    (``adversarial`` with KL), their BN-regularised variants (``bn``) and CPSC-DFKD
    (a class-conditional generator with ``adversarial`` KL + ``ikd`` + ``bn`` +
    ``contrastive`` + ``class_ce``).

    Labels: a class-conditional generator (``DCGANGenerator(num_classes=...)``) is asked for
    class-balanced labels ``y``; an unconditional one gets the teacher's top-1 as pseudo-labels
    (for ``contrastive``; ``class_ce`` then equals DAFL's one-hot loss). :meth:`sample_labelled`
    hands the labels to the student's pseudo-label loss.

    Args:
        generator (dict): Generator config, e.g. ``DCGANGenerator``.
        batch_size (int): Images per generator update.
        onehot (dict, optional): ``OneHotLoss`` on the teacher logits.
        entropy (dict, optional): ``InformationEntropyLoss`` on the teacher logits.
        activation (dict, optional): ``ActivationLoss`` on the teacher's penultimate features.
        bn (dict, optional): ``BNStatisticsLoss`` against the teacher's BN running statistics.
        adversarial (dict, optional): ``AdversarialDisagreementLoss`` between student and
            teacher logits (the generator seeks samples the student gets wrong).
        ikd (dict, optional): A second adversarial term, e.g. CPSC-DFKD's negative logit MSE
            ``AdversarialDisagreementLoss(divergence='mse')``.
        contrastive (dict, optional): ``SupConLoss`` over the student's and teacher's
            penultimate features with the labels as classes.
        class_ce_weight (float): Weight of ``CE(T(G(z, y)), y)``; 0 disables it.
        pool (dict, optional): ``SyntheticDataPool`` config of a replay pool (our addition):
            every generator step stores the batch it was computed on, with the teacher's
            logits and the labels (no extra query), and the student's batches mix fresh
            samples with pooled ones. An adversarial generator drifts to wherever the
            student is currently weak, so at any moment it covers a narrow set of images;
            the pool keeps what it made earlier in front of the student. ``None``: fresh
            samples only, as in the papers.
        replay_ratio (float): Fraction of each student batch drawn from the pool.
        refine_steps (int): With a pool (our addition, 0 = off): after each generator update
            the batch's pixels take this many Adam steps (``refine_lr``) on the same
            generator objective, labels fixed, and the refined images (with the teacher's
            logits on them) go to the pool. A generator step moves every image a little
            through shared weights; DeepInversion's per-image pixel steps moved the student
            further on Fashion-MNIST (docs/benchmarks.md), so the pool gets both.
        refine_lr (float): Adam learning rate on the pixels for ``refine_steps``.
        refine_adversarial (bool): Keep ``adversarial`` and ``ikd`` in the refinement. Off by
            default: per-pixel steps up the student-teacher disagreement make adversarial
            examples for the student rather than new images (on Fashion-MNIST the student
            fell from 78 % to 45 % at iteration 80 with them).
        pixel_range (tuple[float], optional): Clamp refined pixels to this (normalised)
            range after every step.
    """

    autocast_synthesis = True  # every update goes through the wrapper's (scaled) backward

    method_name = 'DAFL / DFAD / ZSKT / CPSC-DFKD'
    num_classes_key = 'model.synthesizer.generator.num_classes'  # conditional generators

    TERMS = ('onehot', 'entropy', 'activation', 'bn', 'adversarial', 'ikd', 'contrastive')

    def __init__(self, generator: dict, batch_size: int = 256, onehot: dict | None = None,
                 entropy: dict | None = None, activation: dict | None = None,
                 bn: dict | None = None, adversarial: dict | None = None,
                 ikd: dict | None = None, contrastive: dict | None = None,
                 class_ce_weight: float = 0.0, pool: dict | None = None,
                 replay_ratio: float = 0.5, refine_steps: int = 0, refine_lr: float = 0.1,
                 refine_adversarial: bool = False,
                 pixel_range: tuple[float, float] | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0.0 <= replay_ratio <= 1.0:
            raise ValueError('model.synthesizer.replay_ratio must be in [0, 1], got '
                             f'{replay_ratio}')
        if refine_steps < 0:
            raise ValueError('model.synthesizer.refine_steps must be >= 0, got '
                             f'{refine_steps}')
        check_step_sizes({'model.synthesizer.refine_lr': refine_lr})
        if refine_steps and not pool:
            raise ValueError('model.synthesizer.refine_steps needs a replay pool (the refined '
                             "images live there): set model.synthesizer.pool=dict(type="
                             "'SyntheticDataPool', ...) or refine_steps=0.")
        self.refine_steps, self.refine_lr = refine_steps, refine_lr
        self.refine_adversarial = refine_adversarial
        self.pixel_range = tuple(pixel_range) if pixel_range is not None else None
        self.pool = MODELS.build(pool) if pool else None
        self.replay_ratio = replay_ratio
        self.generator = MODELS.build(generator)
        self.batch_size = batch_size
        self.class_ce_weight = class_ce_weight
        terms = dict(onehot=onehot, entropy=entropy, activation=activation, bn=bn,
                     adversarial=adversarial, ikd=ikd, contrastive=contrastive)
        if all(cfg is None for cfg in terms.values()) and not class_ce_weight:
            raise ValueError('GeneratorSynthesizer needs at least one objective; set one of '
                             f'{list(self.TERMS)} or class_ce_weight in model.synthesizer.')
        self.losses = nn.ModuleDict(
            {name: MODELS.build(cfg) for name, cfg in terms.items() if cfg is not None})
        self.num_classes = getattr(self.generator, 'num_classes', None)
        self.conditional = bool(getattr(self.generator, 'conditional', False))
        if class_ce_weight and not self.conditional:
            raise ValueError('model.synthesizer.class_ce_weight needs a class-conditional '
                             'generator (DCGANGenerator num_classes=...); for an '
                             'unconditional one use onehot=dict(type="OneHotLoss").')
        self.balanced_labels = BalancedLabelSampler(self.num_classes) if self.conditional \
            else None

    def set_work_dir(self, work_dir: str) -> None:
        """Keep the pool's files, when there is a pool, in ``<work_dir>/synthetic_pool``."""
        if self.pool is not None:
            self.pool.set_root(osp.join(work_dir, 'synthetic_pool'))

    def bind(self, teacher: nn.Module) -> None:
        """Hook the BN-statistics term, when configured, to the teacher's BN layers."""
        if 'bn' in self.losses:
            self.losses['bn'].bind(teacher)

    def bind_student(self, student: nn.Module, teacher: nn.Module) -> None:
        """Size the contrastive projections from both models' penultimate features."""
        if 'contrastive' in self.losses and hasattr(self.losses['contrastive'], 'build'):
            probe = torch.zeros(2, *self.image_shape)
            dims = []
            for model in (student, teacher):
                was_training = model.training
                model.eval()
                with torch.no_grad():
                    dims.append(classifier_logits_and_features(model, probe)[1].size(1))
                model.train(was_training)
            self.losses['contrastive'].build(*dims)

    def _generate(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = next(self.generator.parameters()).device
        z = sample_latent(self.generator, batch_size, device)
        if not self.conditional:
            return self.generator(z), None
        labels = self.balanced_labels(batch_size, device)
        return self.generator(z, labels), labels

    def synthesize(self, distiller: 'DataFreeDistiller',
                   optim_wrapper: OptimWrapper | None) -> dict[str, torch.Tensor]:
        """One generator update on a fresh batch with the configured terms.

        With ``refine_steps`` the batch is then refined in pixel space; with a pool the images
        the teacher has just answered are pooled. A conditional generator also reports
        ``label_acc``: how many images the teacher reads as the class they were made for.
        """
        if optim_wrapper is None:
            raise ValueError("GeneratorSynthesizer needs optim_wrapper['synthesizer'].")
        images, labels = self._generate(self.batch_size)
        losses, t_logits, labels = self._objective(distiller, images, labels)
        self.step(optim_wrapper, sum(losses.values()))
        out = {k: v.detach() for k, v in losses.items()}
        if self.conditional:
            out['label_acc'] = (t_logits.argmax(1) == labels).float().mean().detach()
        if self.refine_steps:
            images, t_logits = self._refine(distiller, images.detach().float(), labels)
            if self.conditional:
                out['refined_label_acc'] = (t_logits.argmax(1) == labels).float().mean()
        if self.pool is not None:
            # The images the teacher has just answered: pooled without another query.
            self.pool.add(images.detach(), t_logits.detach(),
                          labels=labels if self.conditional else None)
            out['pool_size'] = torch.tensor(float(len(self.pool)))
        return out

    def _objective(self, distiller: 'DataFreeDistiller', images: torch.Tensor,
                   labels: torch.Tensor | None, with_adversarial: bool = True
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The configured terms on ``images`` (labels: the teacher's top-1 when ``None``;
        ``with_adversarial=False`` leaves out ``adversarial`` and ``ikd``); returns the
        terms, the teacher's logits and the labels used."""
        need_features = 'activation' in self.losses or 'contrastive' in self.losses
        t_logits, t_feats = distiller.teacher_forward(images, with_features=need_features)
        if labels is None:
            labels = t_logits.argmax(1).detach()
        losses = {}
        if 'onehot' in self.losses:
            losses['loss_onehot'] = self.losses['onehot'](t_logits)
        if 'entropy' in self.losses:
            losses['loss_entropy'] = self.losses['entropy'](t_logits)
        if 'activation' in self.losses:
            losses['loss_activation'] = self.losses['activation'](t_feats)
        if 'bn' in self.losses:
            losses['loss_bn'] = self.losses['bn']()
        if self.class_ce_weight:
            losses['loss_class_ce'] = self.class_ce_weight * F.cross_entropy(t_logits, labels)
        adversarial = ('adversarial', 'ikd') if with_adversarial else ()
        if {*adversarial, 'contrastive'} & set(self.losses):
            s_logits, s_feats = distiller.student_forward(images, with_features=True)
            for name in adversarial:
                if name in self.losses:
                    key = 'loss_adv' if name == 'adversarial' else 'loss_ikd'
                    losses[key] = self.losses[name](s_logits, t_logits)
            if 'contrastive' in self.losses:
                losses['loss_supcon'] = self.losses['contrastive'](s_feats, t_feats, labels)
        return losses, t_logits, labels

    def _refine(self, distiller: 'DataFreeDistiller', images: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``refine_steps`` Adam steps on the pixels of ``images`` against the generator
        objective (without the adversarial terms unless ``refine_adversarial``), ``labels``
        fixed; returns the images and the teacher's logits on them.
        Gradients go to the pixels only (``autograd.grad``), never to the generator, the
        student or the contrastive heads."""
        pixels = images.clone().requires_grad_(True)
        # A fresh optimiser per batch: each batch is its own small inversion problem.
        optimizer = torch.optim.Adam([pixels], lr=self.refine_lr, betas=(0.5, 0.99))
        for _ in range(self.refine_steps):
            # Pixel gradients have no loss scaler, so the refinement stays in float32 (--amp).
            with torch.autocast(pixels.device.type, enabled=False):
                losses, _, _ = self._objective(distiller, pixels, labels,
                                               with_adversarial=self.refine_adversarial)
            pixels.grad, = torch.autograd.grad(sum(losses.values()), pixels)
            optimizer.step()
            if self.pixel_range is not None:
                with torch.no_grad():
                    pixels.clamp_(*self.pixel_range)
        with torch.no_grad():
            t_logits, _ = distiller.teacher_forward(pixels)
        return pixels.detach(), t_logits

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        """The images of :meth:`sample_labelled`, without their labels."""
        return self.sample_labelled(batch_size)[0]

    @torch.no_grad()
    def sample_labelled(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Fresh generator samples, ``replay_ratio`` of them replaced by pooled ones when
        there is a pool (labels: the class each was generated for; ``None`` for an
        unconditional generator)."""
        replayed = (round(batch_size * self.replay_ratio)
                    if self.pool is not None and len(self.pool) else 0)
        if not replayed:
            return self._generate(batch_size)
        device = next(self.generator.parameters()).device
        record = self.pool.gather(self.pool.sample_index(replayed), device=device)
        pooled_labels = record['labels'] if self.conditional else None
        if replayed == batch_size:
            return record['images'], pooled_labels
        images, labels = self._generate(batch_size - replayed)
        images = torch.cat([images, record['images']])
        return images, (torch.cat([labels, pooled_labels]) if labels is not None else None)
