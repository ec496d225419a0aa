# DeepInversion on CIFAR-10 (GPU users), recipe of the datafree toolbox's scripts: 2000 Adam
# steps per 256-image batch, BN weight 10, CE 1; each batch is followed by 2000 student steps
# (KD, T=20) on the pool; 200 rounds.
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

model = dict(
    synthesizer=dict(
        type='InversionSynthesizer',
        image_shape=(3, 32, 32),
        num_classes=10,
        batch_size=256,
        iterations=2000,
        lr=0.1,
        bn=dict(type='BNStatisticsLoss', loss_weight=10.0),
        ce_weight=1.0,
        tv=dict(type='TotalVariationLoss', p=2, loss_weight=1e-4),
        augment=[dict(type='RandomCrop', size=32, padding=4),
                 dict(type='RandomHorizontalFlip')],
        # range of normalised CIFAR pixels over the three channels
        pixel_range=(-2.43, 2.75),
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=20.0),
    student_augment=[dict(type='RandomHorizontalFlip'),
                     dict(type='RandomCrop', size=32, padding=4)],
    synthesizer_steps=1,
    student_steps=2000,
    student_batch_size=256,
)

max_iters = 200
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=1))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=20)]
