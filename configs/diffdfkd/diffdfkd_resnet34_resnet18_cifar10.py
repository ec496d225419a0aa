# DiffDFKD on CIFAR-10 (GPU users): a local Stable Diffusion v1.5 folder (diffusers layout:
# unet, vae, text_encoder, tokenizer, scheduler; nothing is downloaded) steered by the
# ResNet-34 teacher, prompts "a realistic photo of a {class}", latent CutMix every 5 steps
# with seam inpainting; the ResNet-18 student learns KL (T=30) + CAM consistency.
_base_ = ['../_base_/datafree_resnet34_resnet18_cifar10.py']

# Set it: --cfg-options model.synthesizer.pipeline_path=/path/to/stable-diffusion-v1-5
pipeline_path = 'work_dirs/stable-diffusion-v1-5'
model = dict(
    synthesizer=dict(
        type='DiffusionSynthesizer',
        pipeline_path=pipeline_path,
        image_shape=(3, 32, 32),
        num_classes=10,
        mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255],
        class_names=['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                     'ship', 'truck'],
        prompt_template='a realistic photo of a {}',
        guidance_scale=7.5,
        resolution=256,
        batch_size=32,
        num_inference_steps=50,
        scheduler='DDIMScheduler',
        guidance_lr=0.1,
        bn=dict(type='BNStatisticsLoss', loss_weight=1.0),
        ce_weight=1.0,
        adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl', tau=1.0,
                         agree_only=True, loss_weight=1.0),
        cutmix_every=5,
        repair_steps=1,
        dtype='float16',
        attention_slicing=True,
        pool=dict(type='SyntheticDataPool', max_images=100000, policy='fifo'),
    ),
    distill_loss=dict(type='KLDivergenceLoss', tau=30.0),
    cam_loss=dict(type='CAMConsistencyLoss', loss_weight=1.0),
    student_augment=[dict(type='RandomCrop', size=32, padding=4),
                     dict(type='RandomHorizontalFlip')],
    synthesizer_steps=1,
    student_steps=100,
    student_batch_size=256,
    warmup_iters=10,
)

max_iters = 2000
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    student=dict(type='OptimWrapper',
                 optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=5e-4)),
)
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=200)
default_hooks = dict(checkpoint=dict(interval=100))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=200)]
