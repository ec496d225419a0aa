from .lenet import LeNet
from .wide_resnet import WideResNet

__all__ = ['LeNet', 'WideResNet']
