# DIP-KD on CIFAR-10 (GPU users), the paper's setting: a ResNet-18 teacher reached only through
# its top-1 label, a ResNet-18 student, 50K labelled image priors (= 50K teacher queries).
# Phases as in configs/dipkd/dipkd_lenet5_lenet5_fmnist.py: label the priors, train a primer
# student on them, refine the priors contrastively, distil (CE on labels + L1 to the primer's
# logits). The paper's schedule: SGD 0.01 (momentum 0.9, wd 5e-4), batch 100, 100 epochs a
# phase. The priors are the paper's (no Fashion-MNIST background or zoom); the students see
# CIFAR's usual crops and flips (ours).
_base_ = ['../_base_/datasets/cifar10_test_only.py', '../_base_/datafree_runtime.py']

# Train one with configs/teachers/resnet18_cifar10.py; override with --cfg-options.
teacher_ckpt = 'work_dirs/teachers/resnet18_cifar10/epoch_200.pth'
num_classes = 10
resnet18 = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3, ),
                  style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=512))
mean, std = [125.307, 122.961, 113.8575], [51.5865, 50.847, 51.255]

num_images = 50000      # labelled priors = teacher queries
synthesis_batch = 500
batch_size = 100        # primer / student / contrast batch
iters_per_epoch = num_images // batch_size
primer_epochs, contrast_epochs, distill_epochs = 100, 1, 100
phase_iters = dict(synthesis=-(-num_images // synthesis_batch),
                   primer=primer_epochs * iters_per_epoch,
                   contrast=contrast_epochs * iters_per_epoch,
                   distill=distill_epochs * iters_per_epoch)
distill_begin = phase_iters['synthesis'] + phase_iters['primer'] + phase_iters['contrast']
max_iters = distill_begin + phase_iters['distill']

model = dict(
    type='DIPKD',
    # Only the top-1 label ever leaves the teacher; the budget refuses any 50,001st query.
    # For a served teacher: dict(type='HardLabelTeacher', num_classes=10,
    #                            url='http://HOST:PORT', query_budget=num_images)
    teacher=dict(type='HardLabelTeacher', num_classes=num_classes, model=resnet18,
                 checkpoint=teacher_ckpt, query_budget=num_images),
    student=resnet18,
    synthesizer=dict(
        type='ImagePriorSynthesizer',
        image_shape=(3, 32, 32),
        batch_size=synthesis_batch,
        num_images=num_images,
        mean=mean, std=std,
        hierarchical=True, rotation=45.0, elastic_alpha=3.0, elastic_sigma=2.0,
        crop_scale=(0.5, 1.0), mix_prob=0.5, monochrome_prob=0.5,
        pool=dict(type='SyntheticDataPool', cache_batches=1000)),
    contrast=dict(type='InstanceContrastRefiner', embed_dim=128, temperature=0.1,
                  image_lr=1e-3, steps=1),
    phase_iters=phase_iters,
    batch_size=batch_size,
    ce_weight=1.0,
    primer_weight=1.0,
    augment=[dict(type='RandomCrop', size=32, padding=4), dict(type='RandomHorizontalFlip')],
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes, mean=mean,
                           std=std, to_rgb=False),
)

sgd = dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4)
optim_wrapper = dict(
    constructor='DataFreeOptimWrapperConstructor',
    primer=dict(type='OptimWrapper', optimizer=sgd),
    contrast=dict(type='OptimWrapper',
                  optimizer=dict(type='Adam', lr=1e-3, betas=(0.5, 0.999))),
    student=dict(type='OptimWrapper', optimizer=sgd),
)
primer_begin = phase_iters['synthesis']
param_scheduler = dict(
    primer=dict(type='CosineAnnealingLR', by_epoch=False, begin=primer_begin,
                end=primer_begin + phase_iters['primer'], T_max=phase_iters['primer']),
    contrast=[],  # mmengine wants an entry for every optimizer; constant LR
    student=dict(type='CosineAnnealingLR', by_epoch=False, begin=distill_begin,
                 end=max_iters, T_max=phase_iters['distill']),
)
train_cfg = dict(max_iters=max_iters, val_interval=5 * iters_per_epoch)
default_hooks = dict(logger=dict(interval=100),
                     checkpoint=dict(interval=5 * iters_per_epoch))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=10 * iters_per_epoch)]
