# DAFL on CIFAR-10 (GPU users), the paper's recipe (Chen et al., ICCV 2019, and its public
# scripts): a DCGAN generator from 1000-d noise, 1024 images a batch; generator objective
# one-hot 0.05 + information entropy 5 + activation 0.01 on the teacher, no BN term; student
# KD at T=1 on every fresh batch, SGD 0.1 divided by 10 at epochs 800 and 1600 of 2000
# (120 iterations an epoch), generator Adam 0.02.
# The Fashion-MNIST config adds a BN-statistics term (plain DAFL collapsed there); add it here
# with --cfg-options model.synthesizer.bn.type=BNStatisticsLoss model.synthesizer.bn.loss_weight=1.
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

iters_per_epoch = 120
model = dict(
    synthesizer=dict(
        type='GeneratorSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=1000, img_size=32, channels=3, ngf=64),
        batch_size=1024,
        onehot=dict(type='OneHotLoss', loss_weight=0.05),
        entropy=dict(type='InformationEntropyLoss', loss_weight=5.0),
        activation=dict(type='ActivationLoss', loss_weight=0.01),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=1.0),
    synthesizer_steps=1,
    student_steps=1,
)

max_iters = 2000 * iters_per_epoch
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
    synthesizer=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=0.02)),
)
param_scheduler = dict(
    student=dict(type='MultiStepLR', by_epoch=False,
                 milestones=[800 * iters_per_epoch, 1600 * iters_per_epoch], gamma=0.1),
    synthesizer=dict(type='ConstantLR', factor=1.0, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=10 * iters_per_epoch)
default_hooks = dict(checkpoint=dict(interval=10 * iters_per_epoch))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=10 * iters_per_epoch)]
