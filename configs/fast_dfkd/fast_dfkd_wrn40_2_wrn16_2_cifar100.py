# The CIFAR-100 recipe with WRN-40-2 -> WRN-16-2.
_base_ = ['./fast_dfkd_resnet34_resnet18_cifar100.py']

teacher_ckpt = 'work_dirs/teachers/wrn40_2_cifar100/epoch_200.pth'
model = dict(teacher={{_base_.wrn40_2}}, student={{_base_.wrn16_2}},
                      teacher_ckpt=teacher_ckpt)
