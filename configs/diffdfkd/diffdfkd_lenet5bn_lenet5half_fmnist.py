# DiffDFKD on CPU: a small pixel-space DDPM trained on scikit-learn's 8x8 digits (NOT the
# teacher's data: `python tools/train_ddpm.py --out work_dirs/ddpm_digits`) is steered by the
# LeNet-5-BN teacher at every denoising step (BN + CE + adversarial), with latent CutMix and
# seam inpainting; the student learns KL on the pooled images. LeNet has no final conv map
# feeding its classifier, so the CAM-consistency term is off here (see the CIFAR config).
_base_ = ['../_base_/datafree_lenet5bn_lenet5half_fmnist.py']

pipeline_path = 'work_dirs/ddpm_digits'
model = dict(
    synthesizer=dict(
        type='DiffusionSynthesizer',
        pipeline_path=pipeline_path,
        image_shape=(1, 32, 32),
        num_classes=10,
        mean=[72.94], std=[90.0],
        batch_size=64,
        num_inference_steps=10,
        scheduler='DDIMScheduler',
        guidance_lr=0.15,  # per-step move in units of the latent's RMS (normalize_grad)
        bn=dict(type='BNStatisticsLoss', loss_weight=1.0),
        ce_weight=1.0,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=3.0,
                         agree_only=True, loss_weight=0.5),
        cutmix_every=3,
        cutmix_area=(0.2, 0.4),
        repair_steps=1,
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=4.0),
    student_augment=[dict(type='RandomCrop', size=32, padding=2)],
    synthesizer_steps=1,
    student_steps=10,
    student_batch_size=128,
    warmup_iters=1,
)

max_iters = 300  # about the 840 s benchmark budget at ~2.7 s per iteration
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=5e-4)),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=50)
default_hooks = dict(checkpoint=dict(interval=50))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=100)]
