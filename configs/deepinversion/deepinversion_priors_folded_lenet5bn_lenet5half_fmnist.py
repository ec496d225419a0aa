# DeepInversion from image priors, with the student started from a fold of the teacher (our
# addition): LeNet-5-half is LeNet-5-BN at half width, so every teacher layer's channels are
# clustered into half as many and each cluster merged into one student channel (data-free
# model folding; only the teacher's weights are read). The folded student scores ~60 % before
# any distillation (the magnitude slice ~32 %); a 5x lower student learning rate keeps what it
# starts with. Offline 10K-image probes (docs/benchmarks.md): sliced start 82.8 / 83.2 %,
# folded start at lr 0.01 87.0 / 86.9 % (two seeds).
_base_ = ['./deepinversion_priors_lenet5bn_lenet5half_fmnist.py']

# No adversarial term: images chosen to make student and teacher disagree pull the folded
# student away from what it starts with (with the term: 84.90 % at the end of the suite run,
# below the sliced row; the probes' pools were made without it).
model = dict(student_init_from_teacher='fold', synthesizer=dict(adversarial=None))
optim_wrapper = dict(student=dict(optimizer=dict(lr=0.01)))
