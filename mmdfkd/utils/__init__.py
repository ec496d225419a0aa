"""Helpers with no model code: safe to import from ``mmdfkd.registry``."""
from .atomic_save import WriteFailedError, partial_path, save_whole
from .model_reference import (build_model_resolving_references, find_model_references,
                              is_model_reference, load_referenced_config,
                              referenced_data_preprocessor, resolve_model_reference)
from .random_state import capture_random_state, preserved_random_state, restore_random_state

__all__ = ['build_model_resolving_references', 'find_model_references', 'is_model_reference',
           'load_referenced_config', 'referenced_data_preprocessor', 'resolve_model_reference',
           'capture_random_state', 'preserved_random_state', 'restore_random_state',
           'WriteFailedError', 'partial_path', 'save_whole']
