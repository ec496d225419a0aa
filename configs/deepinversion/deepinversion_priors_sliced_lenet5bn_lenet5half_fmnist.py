# DeepInversion from image priors, with the student started from the teacher's weights
# (our addition): LeNet-5-half is LeNet-5-BN at half width, so the student begins as the
# half of the teacher's channels with the largest BN |gamma| (data-free: only the teacher's
# weights are read). Offline 10K-image probes (docs/benchmarks.md): random init 79.8 / 81.0 %,
# sliced init 82.8 / 83.2 % (two seeds).
_base_ = ['./deepinversion_priors_lenet5bn_lenet5half_fmnist.py']

model = dict(student_init_from_teacher='magnitude')
