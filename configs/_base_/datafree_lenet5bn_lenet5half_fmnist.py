# Shared setting of the white-box fmnist suite: LeNet-5-BN teacher -> LeNet-5-half student,
# 1x32x32 synthetic images, evaluation on the real Fashion-MNIST test split.
_base_ = ['./datasets/fmnist_test_only.py', './datafree_runtime.py']

# The trained teacher; override with --cfg-options teacher_ckpt=PATH.
teacher_ckpt = 'work_dirs/teachers/lenet5bn_fmnist/epoch_15.pth'

teacher = dict(
    type='ImageClassifier',
    backbone=dict(type='LeNet', in_channels=1, width=1.0, with_bn=True),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=84))
student = dict(
    type='ImageClassifier',
    backbone=dict(type='LeNet', in_channels=1, width=0.5, with_bn=True),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=42))
generator = dict(type='DCGANGenerator', latent_dim=100, img_size=32, channels=1, ngf=16)

model = dict(
    type='DataFreeDistiller',
    teacher=teacher,
    student=student,
    teacher_ckpt=teacher_ckpt,
    data_preprocessor=dict(type='ClsDataPreprocessor', num_classes=10, mean=[72.94],
                           std=[90.0], to_rgb=False),
)
