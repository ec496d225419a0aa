from .data_free_distiller import DataFreeDistiller, unwrap

__all__ = ['DataFreeDistiller', 'unwrap']
