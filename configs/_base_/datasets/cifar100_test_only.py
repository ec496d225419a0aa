# Data-free distillation on CIFAR-100: only the real TEST split is read, to evaluate the
# student. Point it at a folder with the CIFAR files: --cfg-options data_root=DIR.
_base_ = ['./cifar100_bs128.py']
train_dataloader = None
