"""Helpers with no model code: safe to import from ``mmdfkd.registry``."""
from .model_reference import (build_model_resolving_references, find_model_references,
                              is_model_reference, load_referenced_config,
                              referenced_data_preprocessor, resolve_model_reference)

__all__ = ['build_model_resolving_references', 'find_model_references', 'is_model_reference',
           'load_referenced_config', 'referenced_data_preprocessor', 'resolve_model_reference']
