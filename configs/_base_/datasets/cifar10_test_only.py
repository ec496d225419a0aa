# Data-free distillation on CIFAR-10: only the real TEST split is read, to evaluate the
# student. Set val_dataloader.dataset.data_root (and test_) to a folder with the CIFAR files.
_base_ = ['./cifar10_bs128.py']
train_dataloader = None
