# The CIFAR-10 recipe with WRN-40-2 -> WRN-16-2.
_base_ = ['./dafl_resnet34_resnet18_cifar10.py']

teacher_ckpt = 'work_dirs/teachers/wrn40_2_cifar10/epoch_200.pth'
model = dict(
    teacher=dict(backbone=dict(_delete_=True, type='WideResNet', depth=40, widen_factor=2),
                 head=dict(in_channels=128)),
    student=dict(backbone=dict(_delete_=True, type='WideResNet', depth=16, widen_factor=2),
                 head=dict(in_channels=128)),
    teacher_ckpt=teacher_ckpt)
