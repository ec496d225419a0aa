# Fast-DFKD from image priors with a folded student (our variant, not the paper's recipe),
# fitted into about 2.5 minutes of a 2-core CPU for the time-to-accuracy comparison with
# DeepInversion (Fast-DFKD's claim: DeepInversion's accuracy in a fraction of its time).
# - The meta-learned generator no longer draws images from noise alone: each image is a
#   DIP-KD image prior plus a small learned residual (PriorResidualGenerator), and the inner
#   loop adapts the generator copy, the noise codes and the priors' pixels together.
# - 2 inner steps per batch (the paper's "Fast-2" setting) and a narrower generator: on this
#   CPU the generator, not the LeNet teacher, is what a synthesis step costs.
# - The student starts from a fold of the teacher (as in deepinversion_priors_folded), at
#   lr 0.01.
# Meta-learning (first-order MAML), BN momentum, the agreeing-samples adversarial term and the
# pool are those of fast_dfkd_lenet5bn_lenet5half_fmnist.py.
_base_ = ['./fast_dfkd_lenet5bn_lenet5half_fmnist.py', '../_base_/models/fmnist_image_prior.py']

inner_steps = 2
lr_g = 2e-3
model = dict(
    student_init_from_teacher='fold',
    synthesizer=dict(
        generator=dict(
            _delete_=True,
            type='PriorResidualGenerator',
            generator=dict(type='DCGANGenerator', latent_dim=256, img_size=32, channels=1,
                           ngf=8),
            prior={{_base_.fmnist_image_prior}},
            residual_scale=0.1),
        iterations=inner_steps,
        lr_g=lr_g,
        # the latent code holds the priors' pixels: DeepInversion's pixel learning rate
        lr_z=0.1,
    ),
    student_steps=50,
)

# ~0.6 s per synthesis + ~32 ms per student step; 10 synthesis-only warm-up iterations.
max_iters = 60
optim_wrapper = dict(
    student=dict(optimizer=dict(lr=0.01)),
    synthesizer=dict(optimizer=dict(lr=lr_g * inner_steps)))
param_scheduler = dict(student=dict(T_max=max_iters))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=max_iters)]
