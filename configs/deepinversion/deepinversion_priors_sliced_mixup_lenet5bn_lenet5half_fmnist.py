# deepinversion_priors_sliced_* plus mixup for the student (our addition): half of every
# student batch is blended with other pool images and the teacher labels the blends.
# Offline 10K-image probes (docs/benchmarks.md), sliced start: without blends 82.79 / 83.23 %,
# with them 83.86 / 83.78 % (two seeds); the full 14-minute row: 85.84 % against 85.93 %
# without them, so this is an ablation, not the recommended recipe.
_base_ = ['./deepinversion_priors_sliced_lenet5bn_lenet5half_fmnist.py']

model = dict(student_mixup=dict(ratio=0.5, alpha=1.0))
