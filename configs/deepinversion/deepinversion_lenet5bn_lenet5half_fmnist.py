# DeepInversion (Yin et al., CVPR 2020): optimise batches of pixels against the teacher's BN
# statistics and class targets, keep them in a disk-backed pool, train the student on the pool.
_base_ = ['../_base_/datafree_lenet5bn_lenet5half_fmnist.py']

model = dict(
    synthesizer=dict(
        type='InversionSynthesizer',
        image_shape=(1, 32, 32),
        num_classes=10,
        batch_size=256,
        iterations=100,
        lr=0.1,
        bn=dict(type='BNStatisticsLoss', loss_weight=10.0),
        ce_weight=1.0,
        tv=dict(type='TotalVariationLoss', p=2, loss_weight=1e-2),
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=3.0,
                         loss_weight=1.0),
        augment=[dict(type='RandomCrop', size=32, padding=2),
                 dict(type='RandomHorizontalFlip')],
        # valid range of normalised Fashion-MNIST pixels: (0 - 72.94) / 90, (255 - 72.94) / 90
        pixel_range=(-0.81, 2.02),
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=1.0),
    student_augment=[dict(type='RandomHorizontalFlip'),
                     dict(type='RandomCrop', size=32, padding=2)],
    # One flip/crop draw per 16 images instead of per image (same augmentations, a fraction
    # of the cost of a per-image torchvision call on CPU).
    student_augment_groups=16,
    synthesizer_steps=1,
    student_steps=20,
    student_batch_size=256,
)

max_iters = 120
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=20)
default_hooks = dict(checkpoint=dict(interval=20))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=60)]
