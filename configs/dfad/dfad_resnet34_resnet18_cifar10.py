# DFAD on CIFAR-10 (GPU users), the paper's recipe (Fang et al., 2019): the generator (DCGAN,
# 256-d noise) maximises the L1 distance between student and teacher logits, the student
# minimises it, 5 student steps per generator step on 256-image batches; no BN or one-hot
# terms. 500 epochs of 50 iterations; student SGD 0.1 (momentum 0.9, wd 5e-4), generator Adam
# 1e-3, both divided by 10 at epochs 100 and 200.
# The Fashion-MNIST config adds BN-statistics, one-hot and entropy terms (plain DFAD collapsed
# to one class there); see configs/dfad/dfad_lenet5bn_lenet5half_fmnist.py.
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

iters_per_epoch = 50
model = dict(
    synthesizer=dict(
        type='GeneratorSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=256, img_size=32, channels=3, ngf=64),
        batch_size=256,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='l1'),
    ),
    distill_loss=dict(type='L1LogitLoss'),
    synthesizer_steps=1,
    student_steps=5,
)

max_iters = 500 * iters_per_epoch
milestones = [100 * iters_per_epoch, 200 * iters_per_epoch]
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
    synthesizer=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3)),
)
param_scheduler = dict(
    student=dict(type='MultiStepLR', by_epoch=False, milestones=milestones, gamma=0.1),
    synthesizer=dict(type='MultiStepLR', by_epoch=False, milestones=milestones, gamma=0.1))
train_cfg = dict(max_iters=max_iters, val_interval=5 * iters_per_epoch)
default_hooks = dict(checkpoint=dict(interval=5 * iters_per_epoch))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=25 * iters_per_epoch)]
