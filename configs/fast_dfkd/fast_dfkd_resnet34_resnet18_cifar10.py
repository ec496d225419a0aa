# Fast-DFKD on CIFAR-10 (GPU users), the paper's "Fast-5" recipe from its public scripts:
# 5 first-order-MAML steps per 256-image batch (lr_g 2e-3, lr_z 0.01), BN 10 with momentum
# 0.9, CE 0.4, agreement-masked adversarial 1.1; 20 warm-up rounds of synthesis only, then
# 400 student steps (KD, T=20, SGD 0.2) per batch; 220 rounds.
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

inner_steps = 5
lr_g = 2e-3
model = dict(
    synthesizer=dict(
        type='GenerativeInversionSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=256, img_size=32, channels=3, ngf=64),
        num_classes=10,
        batch_size=256,
        iterations=inner_steps,
        lr_g=lr_g,
        lr_z=0.01,
        meta='fomaml',
        bn=dict(type='BNStatisticsLoss', loss_weight=10.0, momentum=0.9),
        ce_weight=0.4,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=1.0,
                         agree_only=True, loss_weight=1.1),
        adversarial_warmup=20,
        augment=[dict(type='RandomCrop', size=32, padding=4),
                 dict(type='RandomHorizontalFlip')],
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=20.0),
    student_augment=[dict(type='RandomHorizontalFlip'),
                     dict(type='RandomCrop', size=32, padding=4)],
    synthesizer_steps=1,
    student_steps=400,
    student_batch_size=256,
    warmup_iters=20,
)

max_iters = 220
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.2, momentum=0.9, weight_decay=5e-4)),
    synthesizer=dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=lr_g * inner_steps, betas=(0.5, 0.999))),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False),
    synthesizer=dict(type='ConstantLR', factor=1.0, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=10), logger=dict(interval=1))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=20)]
