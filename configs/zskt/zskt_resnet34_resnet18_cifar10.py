# ZSKT on CIFAR-10 (GPU users), the paper's recipe (Micaelli & Storkey, NeurIPS 2019): the
# generator (100-d noise) maximises KL(T || S); per generator step the student takes 10 steps
# of KL plus attention transfer (weight 250) at the end of every stage; 128-image batches,
# 80,000 generator steps, Adam 1e-3 (generator) and 2e-3 (student), both cosine-annealed.
# Attention pairs: the four ResNet stages of teacher and student.
# The Fashion-MNIST config adds BN-statistics, one-hot and entropy terms to the generator.
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

model = dict(
    synthesizer=dict(
        type='GeneratorSynthesizer',
        generator=dict(type='DCGANGenerator', latent_dim=100, img_size=32, channels=3, ngf=64),
        batch_size=128,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=1.0),
    feature_loss=dict(type='AttentionTransferLoss', loss_weight=250.0),
    feature_layers=dict(
        student=['backbone.layer1', 'backbone.layer2', 'backbone.layer3', 'backbone.layer4'],
        teacher=['backbone.layer1', 'backbone.layer2', 'backbone.layer3', 'backbone.layer4']),
    synthesizer_steps=1,
    student_steps=10,
)

max_iters = 80000
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=2e-3)),
    synthesizer=dict(type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3)),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False),
    synthesizer=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=1000)
default_hooks = dict(checkpoint=dict(interval=1000))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=5000)]
