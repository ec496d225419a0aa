from .checkpoint_loader import load_local_checkpoint
from .data_free_loop import (BUDGET_FRACTION_KEY, TRAIN_ELAPSED_KEY, DataFreeTrainLoop,
                             SyntheticBatchSource, rank0_seconds,
                             resumed_train_elapsed_s)
from .data_free_runner import DataFreeRunner

__all__ = ['DataFreeTrainLoop', 'SyntheticBatchSource', 'DataFreeRunner',
           'load_local_checkpoint', 'TRAIN_ELAPSED_KEY', 'BUDGET_FRACTION_KEY',
           'resumed_train_elapsed_s', 'rank0_seconds']
