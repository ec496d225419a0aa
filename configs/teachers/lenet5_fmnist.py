# Plain LeNet-5 (no BN) on Fashion-MNIST: the black-box teacher of DIP-KD's setting.
_base_ = [
    '../_base_/models/lenet5.py', '../_base_/datasets/fmnist_bs128.py',
    '../_base_/schedules/fmnist_teacher.py', '../_base_/default_runtime.py'
]
