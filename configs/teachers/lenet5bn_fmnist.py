# LeNet-5 with BatchNorm on Fashion-MNIST: the white-box teacher of the fmnist suite.
_base_ = [
    '../_base_/models/lenet5bn.py', '../_base_/datasets/fmnist_bs128.py',
    '../_base_/schedules/fmnist_teacher.py', '../_base_/default_runtime.py'
]
