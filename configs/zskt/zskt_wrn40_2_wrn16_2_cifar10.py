# The CIFAR-10 recipe with WRN-40-2 -> WRN-16-2.
_base_ = ['./zskt_resnet34_resnet18_cifar10.py', '../_base_/datafree_cifar_variants.py']

teacher_ckpt = 'work_dirs/teachers/wrn40_2_cifar10/epoch_200.pth'
model = dict(teacher={{_base_.wrn40_2}}, student={{_base_.wrn16_2}},
             feature_layers=dict(student={{_base_.wrn_stages}}, teacher={{_base_.wrn_stages}}),
             teacher_ckpt=teacher_ckpt)
