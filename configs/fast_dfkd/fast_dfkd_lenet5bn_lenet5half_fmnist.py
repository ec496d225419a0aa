# Fast-DFKD (Fang et al., AAAI 2022): a meta-learned generator adapts to each new batch in a
# few steps (first-order MAML), BN statistics matched with momentum across batches, the
# adversarial term only on samples student and teacher agree on; batches go to a disk pool.
_base_ = ['../_base_/datafree_lenet5bn_lenet5half_fmnist.py']

inner_steps = 5
lr_g = 2e-3
model = dict(
    synthesizer=dict(
        type='GenerativeInversionSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=256, img_size=32, channels=1, ngf=16),
        num_classes=10,
        batch_size=256,
        iterations=inner_steps,
        lr_g=lr_g,
        lr_z=0.01,
        meta='fomaml',
        bn=dict(type='BNStatisticsLoss', loss_weight=10.0, momentum=0.9),
        ce_weight=1.0,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=1.0,
                         agree_only=True, loss_weight=1.1),
        adversarial_warmup=10,
        augment=[dict(type='RandomCrop', size=32, padding=2),
                 dict(type='RandomHorizontalFlip')],
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=1.0),
    student_augment=[dict(type='RandomHorizontalFlip'),
                     dict(type='RandomCrop', size=32, padding=2)],
    # One flip/crop draw per 16 images instead of per image (a per-image torchvision call
    # cost more than half of each student step on a 2-core CPU).
    student_augment_groups=16,
    synthesizer_steps=1,
    student_steps=80,
    student_batch_size=256,
    warmup_iters=10,
)

# About 14 minutes on a 2-core CPU (~4 s per iteration: 5 inner steps + 80 student steps).
max_iters = 200
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)),
    # The meta generator's outer optimiser; lr = inner lr x inner steps as in the paper's code.
    synthesizer=dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=lr_g * inner_steps, betas=(0.5, 0.999))),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False),
    synthesizer=dict(type='ConstantLR', factor=1.0, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=40)
default_hooks = dict(checkpoint=dict(interval=40))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=65)]
