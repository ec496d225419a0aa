# DIP-KD with 10K teacher queries (10K labelled priors); everything else as in
# dipkd_lenet5_lenet5_fmnist.py (50K). A point of the accuracy-vs-queries curve.
_base_ = ['./dipkd_lenet5_lenet5_fmnist.py']

num_images = 10000
synthesis_batch = 500
batch_size = 100
iters_per_epoch = num_images // batch_size
primer_epochs, contrast_epochs, distill_epochs = 20, 1, 20
phase_iters = dict(synthesis=-(-num_images // synthesis_batch),
                   primer=primer_epochs * iters_per_epoch,
                   contrast=contrast_epochs * iters_per_epoch,
                   distill=distill_epochs * iters_per_epoch)
primer_begin = phase_iters['synthesis']
distill_begin = primer_begin + phase_iters['primer'] + phase_iters['contrast']
max_iters = distill_begin + phase_iters['distill']

model = dict(teacher=dict(query_budget=num_images),
             synthesizer=dict(num_images=num_images, pool=dict(max_images=num_images)),
             phase_iters=phase_iters)
param_scheduler = dict(
    primer=dict(begin=primer_begin, end=primer_begin + phase_iters['primer'],
                T_max=phase_iters['primer']),
    student=dict(begin=distill_begin, end=max_iters, T_max=phase_iters['distill']))
train_cfg = dict(max_iters=max_iters, val_interval=5 * iters_per_epoch)
default_hooks = dict(checkpoint=dict(interval=5 * iters_per_epoch))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=5 * iters_per_epoch)]
