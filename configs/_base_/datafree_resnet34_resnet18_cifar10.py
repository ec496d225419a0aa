# Shared setting of the CIFAR-10 white-box benchmarks (GPU users): ResNet-34 teacher ->
# ResNet-18 student, 3x32x32 synthetic images, evaluation on the real CIFAR-10 test split.
_base_ = ['./datasets/cifar10_test_only.py', './datafree_runtime.py']

# Train one with configs/teachers/resnet34_cifar10.py; override with --cfg-options.
teacher_ckpt = 'work_dirs/teachers/resnet34_cifar10/epoch_200.pth'
num_classes = 10

teacher = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=34, num_stages=4, out_indices=(3, ),
                  style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=512))
student = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=4, out_indices=(3, ),
                  style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=num_classes, in_channels=512))

model = dict(
    type='DataFreeDistiller',
    teacher=teacher,
    student=student,
    teacher_ckpt=teacher_ckpt,
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=num_classes,
                           mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255],
                           to_rgb=False),
)
# The published CIFAR recipes evaluate every few thousand student steps.
default_hooks = dict(logger=dict(interval=50))
