# Naive KD on noise (the black-box baseline DIP-KD compares with): 50K uniform-noise images
# labelled by the teacher's top-1, a student trained with CE on them. No priors, no primer,
# no contrast.
_base_ = ['./dipkd_lenet5_lenet5_fmnist.py']

num_images = 50000
batch_size = 100
iters_per_epoch = num_images // batch_size
distill_epochs = 20
phase_iters = dict(synthesis=num_images // 500, primer=0, contrast=0,
                   distill=distill_epochs * iters_per_epoch)
max_iters = phase_iters['synthesis'] + phase_iters['distill']

model = dict(
    synthesizer=dict(hierarchical=False, rotation=0.0, elastic_alpha=0.0, crop_scale=None,
                     mix_prob=0.0, background_prob=0.0, zoom_range=None, aspect_sigma=0.0,
                     # plain KD sees the noise as it comes, not class-balanced
                     balanced=False),
    primer_weight=0.0,
    phase_iters=phase_iters)
optim_wrapper = dict(_delete_=True,
                     constructor='DataFreeOptimWrapperConstructor',
                     student=dict(type='OptimWrapper',
                                  optimizer=dict(type='SGD', lr=0.01, momentum=0.9,
                                                 weight_decay=5e-4)))
param_scheduler = dict(
    _delete_=True,
    student=dict(type='CosineAnnealingLR', by_epoch=False, begin=phase_iters['synthesis'],
                 end=max_iters, T_max=phase_iters['distill']))
train_cfg = dict(max_iters=max_iters)
