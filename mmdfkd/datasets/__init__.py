from .cifar import LocalCIFAR10, LocalCIFAR100
from .fashion_mnist import DEBIAN_FASHION_MNIST_ROOT, FashionMNISTIdx
from .transforms import CenterPad, ToGrayscale

__all__ = ['FashionMNISTIdx', 'CenterPad', 'DEBIAN_FASHION_MNIST_ROOT', 'LocalCIFAR10',
           'LocalCIFAR100', 'ToGrayscale']
