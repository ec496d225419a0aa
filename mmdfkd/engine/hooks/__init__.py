from .random_state_hook import (RandomStateHook, capture_random_state,
                                restore_random_state)
from .synthetic_visualization_hook import SyntheticVisualizationHook, per_class_grid
from .timed_validation_hook import TimedValidationHook

__all__ = ['RandomStateHook', 'capture_random_state', 'restore_random_state',
           'SyntheticVisualizationHook', 'per_class_grid', 'TimedValidationHook']
