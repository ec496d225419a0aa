from .data_free_constructor import DataFreeOptimWrapperConstructor
from .mixed_precision import scale_like_backward

__all__ = ['DataFreeOptimWrapperConstructor', 'scale_like_backward']
