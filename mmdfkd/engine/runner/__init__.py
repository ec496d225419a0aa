from .checkpoint_loader import load_local_checkpoint
from .data_free_loop import DataFreeTrainLoop, SyntheticBatchSource
from .data_free_runner import DataFreeRunner

__all__ = ['DataFreeTrainLoop', 'SyntheticBatchSource', 'DataFreeRunner',
           'load_local_checkpoint']
