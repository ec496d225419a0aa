# CIFAR ResNet-18 teacher (GPU users; DIP-KD's CIFAR-10 setting). Point it at the unpacked
# CIFAR python archive with --cfg-options data_root=DIR (reaches every split's dataset);
# nothing is downloaded.
_base_ = [
    '../_base_/datasets/cifar10_bs128.py', '../_base_/schedules/cifar_teacher.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3, ),
                  style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
