from .ensemble import ClassifierEnsemble

__all__ = ['ClassifierEnsemble']
