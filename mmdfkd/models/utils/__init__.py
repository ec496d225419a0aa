from .augment import BatchAugment
from .classifier import classifier_logits_and_features
from .recorder import ModuleOutputRecorder
from .freeze import evaluation_mode, frozen_parameters
from .meta import META_METHODS, MetaGradient
from .targets import BalancedLabelSampler

__all__ = [
    'BatchAugment', 'classifier_logits_and_features', 'ModuleOutputRecorder', 'frozen_parameters',
    'evaluation_mode', 'MetaGradient', 'META_METHODS', 'BalancedLabelSampler'
]
