from .synthetic_visualization_hook import SyntheticVisualizationHook, per_class_grid
from .timed_validation_hook import TimedValidationHook

__all__ = ['SyntheticVisualizationHook', 'per_class_grid', 'TimedValidationHook']
