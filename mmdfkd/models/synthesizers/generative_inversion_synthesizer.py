"""Model inversion through a generator: CMI and Fast-DFKD."""
import copy
import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from torch import nn

from mmdfkd.models.losses import instance_channel_means
from mmdfkd.models.utils import (META_METHODS, BalancedLabelSampler, BatchAugment, MetaGradient,
                                 ModuleOutputRecorder, check_step_sizes)
from mmdfkd.registry import MODELS
from .base import GeneratedImageShape, PooledSynthesizer
from .generator import sample_latent

if TYPE_CHECKING:
    from mmdfkd.models.algorithms import DataFreeDistiller


def reset_parameters(module: nn.Module) -> None:
    """Re-initialise every sub-module that knows how (conv, linear, BN...)."""
    for m in module.modules():
        if m is not module and hasattr(m, 'reset_parameters'):
            m.reset_parameters()


@MODELS.register_module()
class GenerativeInversionSynthesizer(GeneratedImageShape, PooledSynthesizer):
    """Invert the teacher through a generator ``G(z)`` and keep the results in a data pool.

    Each :meth:`synthesize` call draws class-balanced targets and a learnable latent ``z``,
    then runs ``iterations`` Adam steps on ``z`` and a *working copy* of the generator
    against ``bn + ce_weight * CE(T(x), y) + adversarial (+ contrastive)`` on an augmented
    view of ``x = G(z)``; the lowest-loss batch goes into the pool, and :meth:`sample` draws
    from the pool. How the working copy relates to the kept generator selects the method:

    * **CMI** (``reset_generator=True`` + ``contrastive``): a freshly initialised generator
      per batch (each batch is its own inversion problem, as in the paper), with the
      instance-contrastive term over global/local views and a memory bank of earlier
      samples' embeddings, so new samples differ from old ones.
    * **Fast-DFKD** (``meta='reptile'`` or ``'fomaml'``): a copy of the *meta* generator,
      adapted for only a few steps; afterwards the meta generator takes one first-order meta
      step (``optim_wrapper['synthesizer']``) towards initialisations that adapt fast. Use
      with BN momentum (``bn=dict(type='BNStatisticsLoss', momentum=0.9)``) and the
      adversarial term restricted to agreeing samples (``agree_only=True``).
    * neither: the generator itself keeps training across batches.

    Args:
        generator (dict): Generator config with a ``latent_dim`` attribute.
        num_classes (int): Teacher classes.
        batch_size (int): Images per synthesised batch.
        iterations (int): Inner Adam steps per batch (``g_steps``).
        lr_g (float): Inner learning rate of the generator copy.
        lr_z (float): Inner learning rate of the latent codes.
        bn (dict, optional): ``BNStatisticsLoss`` config (weight 10 when not given).
        ce_weight (float): Weight of the teacher's CE on the targets (``oh``).
        adversarial (dict, optional): ``AdversarialDisagreementLoss`` config (``adv``); the
            student is evaluated in eval mode.
        adversarial_warmup (int): Batches synthesised before the adversarial term starts
            (the untrained student gives no useful signal).
        contrastive (dict, optional): ``InstanceContrastiveLoss`` config (CMI).
        contrastive_layers (list[str], optional): Teacher modules whose outputs (per-image
            channel means) embed an image for the contrastive term, e.g.
            ``['backbone.layer1', ..., 'backbone.layer4']`` for a ResNet (keeps the head
            small); by default the inputs of every BN layer.
        augment (list[dict], optional): ``transforms.v2`` making the global view, one
            jitter per batch (differentiable).
        local_augment (list[dict], optional): ``transforms.v2`` making the local view for
            the contrastive term, e.g. ``RandomResizedCrop`` with ``scale=(0.25, 1)``.
        meta (str, optional): ``'reptile'`` or ``'fomaml'`` (Fast-DFKD).
        reset_generator (bool): Start every batch from a freshly initialised generator (CMI).
        pool (dict, optional): ``SyntheticDataPool`` config.
    """

    method_name = 'CMI / Fast-DFKD'

    def __init__(self, generator: dict, num_classes: int = 10, batch_size: int = 256,
                 iterations: int = 5, lr_g: float = 1e-3, lr_z: float = 1e-3,
                 bn: dict | None = None, ce_weight: float = 1.0,
                 adversarial: dict | None = None, adversarial_warmup: int = 0,
                 contrastive: dict | None = None, contrastive_layers: list[str] | None = None,
                 augment: list[dict] | None = None,
                 local_augment: list[dict] | None = None, meta: str | None = None,
                 reset_generator: bool = False, pool: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(pool=pool, init_cfg=init_cfg)
        if iterations < 1:
            raise ValueError(f'model.synthesizer.iterations must be >= 1, got {iterations}')
        check_step_sizes({'model.synthesizer.lr_g': lr_g, 'model.synthesizer.lr_z': lr_z})
        if meta is not None and meta not in META_METHODS:
            raise ValueError(f'model.synthesizer.meta must be one of {META_METHODS} or None, '
                             f"got '{meta}'")
        if meta is not None and reset_generator:
            raise ValueError('model.synthesizer: meta-learning (Fast-DFKD) adapts the kept '
                             'generator, reset_generator=True (CMI) discards it; set one.')
        if contrastive is not None and not local_augment:
            raise ValueError('model.synthesizer.contrastive needs local_augment (the local '
                             "view), e.g. [dict(type='RandomResizedCrop', size=32, "
                             'scale=(0.25, 1.0))].')
        self.generator = MODELS.build(generator)
        if not hasattr(self.generator, 'latent_dim'):
            raise ValueError(f'{type(self.generator).__name__} has no `latent_dim`; '
                             'GenerativeInversionSynthesizer needs a generator G(z).')
        self.num_classes, self.batch_size, self.iterations = num_classes, batch_size, iterations
        self.lr_g, self.lr_z, self.ce_weight = lr_g, lr_z, ce_weight
        self.bn_loss = MODELS.build(bn or dict(type='BNStatisticsLoss', loss_weight=10.0))
        self.adversarial = MODELS.build(adversarial) if adversarial else None
        self.adversarial_warmup = adversarial_warmup
        self.contrastive = MODELS.build(contrastive) if contrastive else None
        self.contrastive_layers = list(contrastive_layers) if contrastive_layers else None
        self._layer_recorder: ModuleOutputRecorder | None = None
        self.augment = BatchAugment(augment, per_sample=False,
                                     key='model.synthesizer.augment') if augment else None
        self.local_augment = (BatchAugment(local_augment, per_sample=False,
                                           key='model.synthesizer.local_augment')
                              if local_augment else None)
        for key, pipeline in (('augment', self.augment), ('local_augment', self.local_augment)):
            if pipeline is not None:
                pipeline.check_keeps_shape(self.image_shape, f'model.synthesizer.{key}',
                                           self.image_shape_key)
        self.meta, self.reset_generator = meta, reset_generator
        self.balanced_targets = BalancedLabelSampler(num_classes)
        # Batches synthesised so far (a buffer: the adversarial warm-up survives resume).
        self.register_buffer('rounds', torch.zeros((), dtype=torch.long))

    def bind(self, teacher: nn.Module) -> None:
        """Hook the BN term to the teacher and size the contrastive head from its embedding
        (the BN inputs, or the outputs of ``contrastive_layers``).
        """
        self.bn_loss.bind(teacher)
        if self.contrastive is None:
            return
        if self.contrastive_layers is None:
            if not self.bn_loss.num_features:
                raise ValueError('model.synthesizer.contrastive embeds images by the inputs of '
                                 "the teacher's BatchNorm layers, and this teacher has none: "
                                 'name teacher modules whose outputs embed them in '
                                 "model.synthesizer.contrastive_layers (e.g. ['backbone'] "
                                 'or its stages).')
            self.contrastive.build(self.bn_loss.num_features)
            return
        self._layer_recorder = ModuleOutputRecorder(teacher, self.contrastive_layers,
                                                    'model.synthesizer.contrastive_layers')
        # One probe forward tells the embedding size of the chosen layers.
        probe = torch.zeros(2, *self.image_shape)
        was_training = teacher.training
        teacher.eval()
        with torch.no_grad():
            teacher(probe, mode='tensor')
        teacher.train(was_training)
        self.contrastive.build(self.instance_features().size(1))

    def instance_features(self) -> torch.Tensor:
        """Instance embedding of the teacher's last forward (for the contrastive term)."""
        if self._layer_recorder is not None:
            return instance_channel_means(self._layer_recorder.outputs())
        return self.bn_loss.instance_features()

    def _working_generator(self) -> nn.Module:
        work = copy.deepcopy(self.generator)
        if self.reset_generator:
            reset_parameters(work)
        return work

    def synthesize(self, distiller: 'DataFreeDistiller',
                   optim_wrapper: OptimWrapper | None) -> dict[str, torch.Tensor]:
        """Fit the generator and latents to one class-balanced batch and pool the best images.

        ``iterations`` inner Adam steps on a working copy of the generator (BN, CE, the
        adversarial term after ``adversarial_warmup`` rounds, the contrastive term); then the
        kept generator gets the meta update (``meta``), the working copy's weights, or
        nothing (``reset_generator``). The images of the lowest-loss inner step go to the
        pool with the teacher's logits. ``optim_wrapper`` updates the meta generator and the
        contrastive head.
        """
        needs_persistent = self.meta is not None or self.contrastive is not None
        if needs_persistent and optim_wrapper is None:
            raise ValueError("model.synthesizer with meta or contrastive needs "
                             "optim_wrapper['synthesizer'] (the meta generator / projection "
                             'head optimizer).')
        device = self._device_probe.device
        targets = self.balanced_targets(self.batch_size, device)
        z = sample_latent(self.generator, self.batch_size, device).requires_grad_(True)
        work = self._working_generator().train()
        # A fresh inner optimiser per batch: each batch is its own (warm-started) problem.
        inner = torch.optim.Adam([{'params': work.parameters(), 'lr': self.lr_g},
                                  {'params': [z], 'lr': self.lr_z}], betas=(0.5, 0.999))
        meta_grad = MetaGradient(self.meta) if self.meta else None
        use_adv = self.adversarial is not None and int(self.rounds) >= self.adversarial_warmup
        best_loss, best_images = math.inf, None
        for _ in range(self.iterations):
            images = work(z)
            view = self.augment(images) if self.augment is not None else images
            t_logits, _ = distiller.teacher_forward(view)
            losses = {'loss_bn': self.bn_loss(),
                      'loss_ce': self.ce_weight * F.cross_entropy(t_logits, targets)}
            if use_adv:  # the student is in eval mode here (student_in_eval_mode)
                losses['loss_adv'] = self.adversarial(distiller.student_forward(view), t_logits)
            if self.contrastive is not None:
                global_feats = self.instance_features()
                distiller.teacher_forward(self.local_augment(images))
                local_feats = self.instance_features()
                losses['loss_contrast'] = self.contrastive(local_feats, global_feats)
            loss = sum(losses.values())
            if loss.item() < best_loss:
                best_loss, best_images = loss.item(), images.detach()
            inner.zero_grad()
            loss.backward()
            if meta_grad is not None:
                meta_grad.accumulate(work)
            inner.step()
            if self.contrastive is not None:
                # The projection head persists across batches; only it has grads here
                # (the kept generator took no part in this graph).
                self.step_with_grads(optim_wrapper, scaled=False)
        self.bn_loss.update_momentum()
        if self.contrastive is not None:
            self.contrastive.memorize(local_feats, global_feats)
        if meta_grad is not None:
            meta_grad.apply(self.generator, work)
            self.step_with_grads(optim_wrapper, scaled=False)
        elif not self.reset_generator:
            self.generator.load_state_dict(work.state_dict())
        self.rounds += 1

        with torch.no_grad():
            final_logits, _ = distiller.teacher_forward(best_images)
        self.pool.add(best_images, final_logits)
        out = {k: v.detach() for k, v in losses.items()}
        out['target_acc'] = (final_logits.argmax(1) == targets).float().mean()
        out['pool_size'] = torch.tensor(float(len(self.pool)))
        return out
