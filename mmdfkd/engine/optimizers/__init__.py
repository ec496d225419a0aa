from .data_free_constructor import DataFreeOptimWrapperConstructor

__all__ = ['DataFreeOptimWrapperConstructor']
