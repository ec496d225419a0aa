from .prediction_visualization_hook import PredictionVisualizationHook
from .random_state_hook import RandomStateHook
from .synthetic_visualization_hook import SyntheticVisualizationHook, per_class_grid
from .timed_validation_hook import TimedValidationHook
from .validation_context_hook import ValidationContextHook

__all__ = ['PredictionVisualizationHook', 'RandomStateHook', 'SyntheticVisualizationHook',
           'per_class_grid', 'TimedValidationHook', 'ValidationContextHook']
