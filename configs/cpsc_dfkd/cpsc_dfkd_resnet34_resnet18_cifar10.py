# CPSC-DFKD on CIFAR (GPU users), the paper's recipe: batch 512, 6 generator and 5 student
# steps per iteration, a=5 (IKD), b=1 (BN), g=0.7 (SupCon, T 0.07), e=0.7 (CE); student SGD
# 0.1 cosine with a 10-epoch linear warm-up, generator Adam 1e-3 (0.5, 0.999); 600 epochs.
# One "epoch" here is 50 iterations (about the paper's 256 generator batches of 512).
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

num_classes = 10
ikd_weight = 5.0
iters_per_epoch = 50
max_iters = 600 * iters_per_epoch
model = dict(
    synthesizer=dict(
        type='GeneratorSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=256, img_size=32, channels=3, ngf=64,
                       num_classes=num_classes),
        batch_size=512,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=1.0),
        ikd=dict(type='AdversarialDisagreementLoss', divergence='mse', loss_weight=ikd_weight),
        bn=dict(type='BNStatisticsLoss', loss_weight=1.0),
        # ResNet-34 and ResNet-18 both give 512-d features: compared directly
        contrastive=dict(type='SupConLoss', temperature=0.07, embed_dim=None, loss_weight=0.7),
        class_ce_weight=0.7,
    ),
    distill_loss=[dict(type='KLDivergenceLoss', tau=1.0),
                  dict(type='MSELogitLoss', loss_weight=ikd_weight)],
    pseudo_label_loss=dict(type='CrossEntropyLoss', loss_weight=0.7),
    synthesizer_steps=6,
    student_steps=5,
)

optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
    synthesizer=dict(type='OptimWrapper',
                     optimizer=dict(type='Adam', lr=1e-3, betas=(0.5, 0.999))),
)
param_scheduler = dict(
    student=[
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
             end=10 * iters_per_epoch),
        dict(type='CosineAnnealingLR', T_max=max_iters - 10 * iters_per_epoch, by_epoch=False,
             begin=10 * iters_per_epoch, end=max_iters),
    ],
    synthesizer=dict(type='ConstantLR', factor=1.0, by_epoch=False),
)
train_cfg = dict(max_iters=max_iters, val_interval=10 * iters_per_epoch)
default_hooks = dict(checkpoint=dict(interval=10 * iters_per_epoch))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=50 * iters_per_epoch)]
