import torch

from mmdfkd.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS


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
