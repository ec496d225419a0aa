# DIP-KD, texture recipe (dipkd_labelmix_texture_*) with a wider primer (our addition): the
# primer is LeNet-5 at width 4 (the student stays LeNet-5), and in the distillation phase the
# student also matches the primer's logits (L1 only) on 100 free overlays max(a, b) of pooled
# pairs per step, so it learns the primer's function beyond the 50K labelled images. Same 50K
# teacher queries. An offline probe on a 50K textured pool, read on the real test split
# (docs/benchmarks.md): primer width 1 / 2 / 4 83.4 / 84.3 / 84.7 %; student from the width-4
# primer 84.4 %, with the overlays 84.9 %.
_base_ = ['./dipkd_labelmix_texture_lenet5_lenet5_fmnist.py']

primer_width = 4.0
model = dict(
    primer=dict(
        type='ImageClassifier',
        backbone=dict(type='LeNet', in_channels=1, width=primer_width, with_bn=False),
        head=dict(type='LinearClsHead', num_classes=10, in_channels=round(84 * primer_width))),
    unlabelled_batch_size=100,
    unlabelled_source='overlays')
