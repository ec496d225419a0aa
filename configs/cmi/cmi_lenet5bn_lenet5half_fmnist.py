# CMI, Contrastive Model Inversion (Fang et al., IJCAI 2021): each batch inverts the teacher
# through a freshly initialised generator, with an instance-contrastive term (global vs local
# views, memory bank of earlier samples) that keeps new samples distinguishable from old ones.
_base_ = ['../_base_/datafree_lenet5bn_lenet5half_fmnist.py']

model = dict(
    synthesizer=dict(
        type='GenerativeInversionSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=256, img_size=32, channels=1, ngf=16),
        num_classes=10,
        batch_size=256,
        # The paper runs 200 steps per batch on a GPU; 40 keeps a 2-core CPU producing.
        iterations=40,
        lr_g=1e-3,
        lr_z=1e-3,
        reset_generator=True,
        bn=dict(type='BNStatisticsLoss', loss_weight=10.0),
        ce_weight=0.5,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=1.0,
                         agree_only=True, loss_weight=0.5),
        contrastive=dict(type='InstanceContrastiveLoss', embed_dim=128, temperature=0.1,
                         bank_size=4096, num_negatives=4096, loss_weight=0.8),
        augment=[dict(type='RandomCrop', size=32, padding=2),
                 dict(type='RandomHorizontalFlip')],
        local_augment=[dict(type='RandomResizedCrop', size=32, scale=(0.25, 1.0)),
                       dict(type='RandomHorizontalFlip')],
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=1.0),
    student_augment=[dict(type='RandomHorizontalFlip'),
                     dict(type='RandomCrop', size=32, padding=2)],
    synthesizer_steps=1,
    student_steps=80,
    student_batch_size=256,
)

# About 14 minutes on a 2-core CPU (29 s per iteration: 40 inner steps on two views).
max_iters = 28
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)),
    # The contrastive projection head (the generator itself is re-initialised every batch).
    synthesizer=dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=1e-3, betas=(0.5, 0.999))),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False),
    synthesizer=dict(type='ConstantLR', factor=1.0, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=7)
default_hooks = dict(checkpoint=dict(interval=7))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=14)]
