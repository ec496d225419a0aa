from .augment import BatchAugment
from .classifier import classifier_logits_and_features
from .recorder import ModuleOutputRecorder
from .freeze import frozen_parameters

__all__ = [
    'BatchAugment', 'classifier_logits_and_features', 'ModuleOutputRecorder', 'frozen_parameters'
]
