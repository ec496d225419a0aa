"""Any mmpretrain classifier as teacher or student, not only the shipped pairs: ResNet and
WRN, a teacher without BatchNorm (a vision transformer), a two-token student head (distilled
DeiT), classifiers whose output or input size does not fit. Each case either trains or is
refused naming the key that fixes it."""
import copy
import uuid

import pytest
import torch
from torch import nn

from mmdfkd.apis import build_runner, load_config
from mmdfkd.models.utils import classifier_logits_and_features, count_classes
from mmdfkd.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from .conftest import config_path
from .runner_utils import one_iteration_options


def test_mmpretrain_resnet_teacher_and_wrn_student(tmp_path):
    """Teacher and student are arbitrary mmpretrain ImageClassifiers (3x32x32, CIFAR-like)."""
    teacher_cfg = dict(type='ImageClassifier',
                       backbone=dict(type='ResNet_CIFAR', depth=18),
                       neck=dict(type='GlobalAveragePooling'),
                       head=dict(type='LinearClsHead', num_classes=10, in_channels=512))
    teacher = MODELS.build(teacher_cfg)
    path = str(tmp_path / 't.pth')
    torch.save({'state_dict': teacher.state_dict()}, path)
    model = MODELS.build(dict(
        type='DataFreeDistiller', teacher=teacher_cfg, teacher_ckpt=path,
        student=dict(type='ImageClassifier',
                     backbone=dict(type='WideResNet', depth=16, widen_factor=1),
                     neck=dict(type='GlobalAveragePooling'),
                     head=dict(type='LinearClsHead', num_classes=10, in_channels=64)),
        synthesizer=dict(type='GeneratorSynthesizer', batch_size=8,
                         generator=dict(type='DCGANGenerator', channels=3, ngf=8),
                         adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl'),
                         bn=dict(type='BNStatisticsLoss')),
        distill_loss=dict(type='KLDivergenceLoss', tau=4.0)))
    optim = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type='DataFreeOptimWrapperConstructor',
        optim_wrapper_cfg=dict(student=dict(optimizer=dict(type='SGD', lr=0.1)),
                               synthesizer=dict(optimizer=dict(type='Adam', lr=1e-3)))))(model)
    model.train()
    logs = model.train_step({}, optim)
    assert torch.isfinite(logs['student.loss_kd']) and torch.isfinite(logs['synth.loss_bn'])
    # the BN loss is bound to all of ResNet-18's BN layers
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.teacher.modules())
    assert len(model.synthesizer.losses['bn']._layers) == n_bn > 10
    preds = model(torch.randn(2, 3, 32, 32), mode='predict')
    assert len(preds) == 2 and preds[0].pred_score.shape == (10, )


TINY_ARCH = dict(embed_dims=32, num_layers=1, num_heads=2, feedforward_channels=64)
# A LayerNorm-only classifier: no BatchNorm, so no running statistics to invert.
VIT_TEACHER = dict(type='ImageClassifier',
                   backbone=dict(type='VisionTransformer', arch=TINY_ARCH, img_size=32,
                                 patch_size=8),
                   head=dict(type='VisionTransformerClsHead', num_classes=10, in_channels=32))
# Distilled DeiT: its head's pre_logits are two tokens (class and distillation).
DEIT_STUDENT = dict(type='ImageClassifier',
                    backbone=dict(type='DistilledVisionTransformer', arch=TINY_ARCH,
                                  img_size=32, patch_size=8),
                    head=dict(type='DeiTClsHead', num_classes=10, in_channels=32))


def one_iteration(config: str, tmp_path, teacher: dict | None = None,
                  student: dict | None = None, **options):
    """Build a CIFAR config with the given models (random weights) and train one iteration;
    returns the runner."""
    path = config_path(*config.split('/'))
    base = load_config(path)
    teacher_cfg = copy.deepcopy(teacher or base.model.teacher)
    ckpt = str(tmp_path / f'teacher_{uuid.uuid4().hex[:6]}.pth')
    torch.save({'state_dict': MODELS.build(copy.deepcopy(teacher_cfg)).state_dict()}, ckpt)
    opts = one_iteration_options(config, ckpt)
    opts.update(options)
    cfg = load_config(path, cfg_options=opts, work_dir=str(tmp_path / uuid.uuid4().hex[:6]))
    cfg.model.teacher = teacher_cfg
    if student is not None:
        cfg.model.student = copy.deepcopy(student)
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:12]}'
    runner = build_runner(cfg)
    runner.train()
    return runner


def refused_then_trained(config: str, tmp_path, match: str, fix: dict, **models):
    """The config with ``models`` is refused with ``match``; with ``fix`` it trains."""
    with pytest.raises(ValueError, match=match):
        one_iteration(config, tmp_path, **models)
    return one_iteration(config, tmp_path, **models, **fix)


def logged(runner, key: str) -> float:
    """The last value of a training log entry, e.g. ``'synth.loss_bn'``."""
    return float(runner.message_hub.get_scalar(f'train/{key}').current())


def test_a_teacher_without_batchnorm_is_refused_by_the_bn_term_then_inverted_without_it(
        tmp_path):
    runner = refused_then_trained(
        'deepinversion/deepinversion_resnet34_resnet18_cifar10.py', tmp_path,
        r'model\.synthesizer\.bn: the teacher \(VisionTransformer\) has no BatchNorm layer.*'
        r'model\.synthesizer\.bn\.loss_weight=0.*DAFL',
        {'model.synthesizer.bn.loss_weight': 0.0}, teacher=VIT_TEACHER)
    assert len(runner.model.synthesizer.pool) == 4  # the CE and TV terms alone made it
    assert logged(runner, 'synth.loss_bn') == 0.0 < logged(runner, 'synth.loss_ce')


def test_cmi_with_a_teacher_without_batchnorm_needs_its_contrastive_layers(tmp_path):
    config = 'cmi/cmi_resnet34_resnet18_cifar10.py'
    off = {'model.synthesizer.bn.loss_weight': 0.0}
    # The shipped recipe embeds by ResNet stages, which a transformer does not have.
    with pytest.raises(ValueError, match=r"model\.synthesizer\.contrastive_layers: modules "
                                         r"\['backbone\.layer1'.*not found in the "
                                         r"VisionTransformer model; its modules include "
                                         r"\[.*'backbone\.layers'"):
        one_iteration(config, tmp_path, teacher=VIT_TEACHER, **off)
    # Left out, the embedding would be the BN inputs, which it has none of either.
    with pytest.raises(ValueError, match=r'model\.synthesizer\.contrastive_layers \(e\.g\.'):
        one_iteration(config, tmp_path, teacher=VIT_TEACHER,
                      **off, **{'model.synthesizer.contrastive_layers': None})
    # The backbone's output (a tuple of stage outputs) embeds the images.
    runner = one_iteration(config, tmp_path, teacher=VIT_TEACHER,
                           **off, **{'model.synthesizer.contrastive_layers': ['backbone']})
    assert len(runner.model.synthesizer.pool) == 4
    assert logged(runner, 'synth.loss_contrast') > 0.0


def test_a_two_token_student_gives_features_and_trains_in_cpsc_dfkd(tmp_path):
    student = MODELS.build(copy.deepcopy(DEIT_STUDENT)).eval()
    images = torch.randn(3, 3, 32, 32)
    logits, features = classifier_logits_and_features(student, images)
    assert features.shape == (3, 64)  # class and distillation tokens side by side
    assert torch.allclose(logits, student(images, mode='tensor'))
    # The recipe contrasts the features as they are (ResNet-34 and -18 are both 512-d).
    runner = refused_then_trained(
        'cpsc_dfkd/cpsc_dfkd_resnet34_resnet18_cifar10.py', tmp_path,
        r"student's penultimate features are 64-d, the teacher's 512-d; set "
        r'model\.synthesizer\.contrastive\.embed_dim',
        {'model.synthesizer.contrastive.embed_dim': 16}, student=DEIT_STUDENT)
    assert runner.iter == 1 and logged(runner, 'synth.loss_supcon') > 0


class _TwoScoreClassifier(nn.Module):
    """Returns two score tensors, as mmpretrain's ConformerHead does."""

    def forward(self, images, mode='tensor'):
        flat = images.flatten(1)[:, :10]
        return flat, flat


class _WindowedClassifier(nn.Module):
    """Asserts on small inputs, as window transformers (DaViT, Swin) do."""

    def forward(self, images, mode='tensor'):
        assert images.size(-1) >= 224, 'The input shape is smaller than the window size (7).'
        return images.flatten(1)[:, :10]


def test_classifiers_that_do_not_fit_are_refused_with_the_key():
    with pytest.raises(ValueError, match=r"model\.student gives a tuple of 2 from "
                                         r"forward\(images, mode='tensor'\).*one "
                                         r'\(N, num_classes\) logits tensor'):
        count_classes(_TwoScoreClassifier(), 'model.student', (3, 32, 32))
    with pytest.raises(ValueError, match=r'model\.synthesizer\.image_shape \(3, 32, 32\) does '
                                         r'not fit model\.teacher.*smaller than the window'):
        count_classes(_WindowedClassifier(), 'model.teacher', (3, 32, 32))
    assert count_classes(_WindowedClassifier(), 'model.teacher', (3, 224, 224)) == 10


# mmpretrain's ImageNet ResNet-18 at 32 px: its backbone returns a tuple of stage outputs
# (only the last stage, 512 x 1 x 1, by default).
ZOO_RESNET18 = dict(cfg_path='mmpretrain::resnet/resnet18_8xb32_in1k.py',
                    head=dict(num_classes=10))


def test_zskt_attention_pairs_of_other_backbones_are_checked_at_build(tmp_path):
    config = 'zskt/zskt_resnet34_resnet18_cifar10.py'
    # A transformer's stages are tokens, not maps: refused when built, listing the per-image
    # output shape of every stage of both models to pair from.
    with pytest.raises(ValueError, match=r"model\.feature_layers: attention transfer compares "
                                         r"\(N, C, H, W\) maps, but student module 0 gives "
                                         r"shape \(2, 32\).*student \{.*'backbone\.layers\.0': "
                                         r"\(18, 32\).*teacher \{.*'backbone\.layer3': "
                                         r"\(256, 8, 8\), 'backbone\.layer4': \(512, 4, 4\)"):
        one_iteration(config, tmp_path, student=DEIT_STUDENT.copy(), **{
            'model.feature_layers.student': ['backbone'],
            'model.feature_layers.teacher': ['backbone.layer4']})
    # Without the attention term it is ZSKT's adversarial KL alone.
    runner = one_iteration(config, tmp_path, student=DEIT_STUDENT.copy(),
                           **{'model.feature_loss': None})
    assert runner.model.feature_loss is None and logged(runner, 'student.loss_kd') > 0.0
    # The ImageNet ResNet's last stage is 1x1 at 32 px, the CIFAR ResNet's 4x4.
    with pytest.raises(ValueError, match=r'attention maps of pair 0 differ in size: student '
                                         r'\(2, 512, 1, 1\) vs teacher \(2, 512, 4, 4\)'):
        one_iteration(config, tmp_path, student=ZOO_RESNET18, **{
            'model.feature_layers.student': ['backbone'],
            'model.feature_layers.teacher': ['backbone.layer4']})
    # Paired with stages of the same resolution, the zoo student trains with attention
    # transfer (its stem strides 4, the CIFAR ResNet's 1).
    runner = one_iteration(config, tmp_path, student=ZOO_RESNET18, **{
        'model.feature_layers.student': ['backbone.layer1', 'backbone.layer2'],
        'model.feature_layers.teacher': ['backbone.layer3', 'backbone.layer4']})
    assert logged(runner, 'student.loss_feat') > 0.0
