from .data_free_distiller import DataFreeDistiller, unwrap
from .dipkd import DIPKD

__all__ = ['DataFreeDistiller', 'DIPKD', 'unwrap']
