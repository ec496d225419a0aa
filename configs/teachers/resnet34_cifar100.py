# CIFAR ResNet-34 teacher (GPU users). Point it at the unpacked CIFAR python archive with
# --cfg-options data_root=DIR (reaches every split's dataset); nothing is downloaded.
_base_ = [
    '../_base_/datasets/cifar100_bs128.py', '../_base_/schedules/cifar_teacher.py',
    '../_base_/default_runtime.py'
]
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=34, num_stages=4, out_indices=(3, ),
                  style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=100, in_channels=512,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
