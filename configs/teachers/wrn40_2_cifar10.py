# WRN-40-2 teacher (GPU users); see resnet34_cifar10.py for setting the data root.
_base_ = [
    '../_base_/datasets/cifar10_bs128.py', '../_base_/schedules/cifar_teacher.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='WideResNet', depth=40, widen_factor=2),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=128,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
