from .synthetic_visualization_hook import SyntheticVisualizationHook, per_class_grid

__all__ = ['SyntheticVisualizationHook', 'per_class_grid']
