# Reference row: the LeNet-5-half student trained on the REAL Fashion-MNIST train split.
# This is what data-free methods try to approach; it is not data-free.
_base_ = [
    '../_base_/models/lenet5half.py', '../_base_/datasets/fmnist_bs128.py',
    '../_base_/schedules/fmnist_teacher.py', '../_base_/default_runtime.py'
]
