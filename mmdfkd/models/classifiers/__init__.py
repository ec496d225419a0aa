from .ensemble import ClassifierEnsemble
from .torch_classifier import TorchClassifier

__all__ = ['ClassifierEnsemble', 'TorchClassifier']
