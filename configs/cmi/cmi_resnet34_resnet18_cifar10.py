# CMI on CIFAR-10 (GPU users), recipe of the datafree toolbox's scripts: 200 steps per
# 256-image batch from a re-initialised generator (lr 1e-3), BN 1, CE 1, adversarial 0.5,
# contrastive 0.8 at T 0.1; 2000 student steps (KD, T=20) per batch; 200 rounds.
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

model = dict(
    synthesizer=dict(
        type='GenerativeInversionSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=256, img_size=32, channels=3, ngf=64),
        num_classes=10,
        batch_size=256,
        iterations=200,
        lr_g=1e-3,
        lr_z=1e-3,
        reset_generator=True,
        bn=dict(type='BNStatisticsLoss', loss_weight=1.0),
        ce_weight=1.0,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=1.0,
                         agree_only=True, loss_weight=0.5),
        contrastive=dict(type='InstanceContrastiveLoss', embed_dim=256, temperature=0.1,
                         bank_size=40960, num_negatives=4096, loss_weight=0.8),
        # embed images by their residual stages' outputs (as the CMI code does for ResNets)
        contrastive_layers=['backbone.layer1', 'backbone.layer2', 'backbone.layer3',
                            'backbone.layer4'],
        augment=[dict(type='RandomCrop', size=32, padding=4),
                 dict(type='RandomHorizontalFlip')],
        local_augment=[dict(type='RandomResizedCrop', size=32, scale=(0.25, 1.0)),
                       dict(type='RandomHorizontalFlip')],
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=20.0),
    student_augment=[dict(type='RandomHorizontalFlip'),
                     dict(type='RandomCrop', size=32, padding=4)],
    synthesizer_steps=1,
    student_steps=2000,
    student_batch_size=128,
)

max_iters = 200
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
    synthesizer=dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=1e-3, betas=(0.5, 0.999))),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False),
    synthesizer=dict(type='ConstantLR', factor=1.0, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=1))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=20)]
