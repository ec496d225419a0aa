# The CIFAR-10 recipe on CIFAR-100 (ResNet-34 -> ResNet-18).
_base_ = ['./deepinversion_resnet34_resnet18_cifar10.py', '../_base_/datafree_cifar_variants.py']

teacher_ckpt = 'work_dirs/teachers/resnet34_cifar100/epoch_200.pth'
model = dict(
    teacher={{_base_.cifar100_head}}, student={{_base_.cifar100_head}},
    synthesizer=dict(num_classes=100),
    data_preprocessor={{_base_.cifar100_preprocessor}}, teacher_ckpt=teacher_ckpt)
val_dataloader = {{_base_.cifar100_val_dataloader}}
test_dataloader = val_dataloader
