# The CIFAR-10 recipe on CIFAR-100 (ResNet-34 -> ResNet-18).
_base_ = ['./dafl_resnet34_resnet18_cifar10.py']

teacher_ckpt = 'work_dirs/teachers/resnet34_cifar100/epoch_200.pth'
num_classes = 100
model = dict(
    teacher=dict(head=dict(num_classes=num_classes)),
    student=dict(head=dict(num_classes=num_classes)),
    teacher_ckpt=teacher_ckpt,
    data_preprocessor=dict(num_classes=num_classes, mean=[129.304, 124.07, 112.434],
                           std=[68.17, 65.392, 70.418]))
val_dataloader = dict(dataset=dict(type='LocalCIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
