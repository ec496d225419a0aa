from .separate_ddp import DataFreeSeparateDDP

__all__ = ['DataFreeSeparateDDP']
