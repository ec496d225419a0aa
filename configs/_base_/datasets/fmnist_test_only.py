# Data-free distillation on Fashion-MNIST: only the real TEST split is read, to evaluate the
# student. There is deliberately no train_dataloader.
_base_ = ['./fmnist_bs128.py']
train_dataloader = None
