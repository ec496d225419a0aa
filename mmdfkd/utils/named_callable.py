"""Callables named in configs as ``'package.module:attribute'``."""
import importlib
from collections.abc import Callable


def import_named_callable(name: str, key: str, example: str) -> Callable:
    """The callable ``name`` (``'package.module:attribute'``) names; a ``ValueError`` naming
    the config ``key`` (and an ``example`` of the form) when it cannot be imported or is not
    callable."""
    module_name, sep, attr = name.partition(':') if isinstance(name, str) else ('', '', '')
    if not sep or not module_name or not attr:
        raise ValueError(f"{key} must name a callable as 'package.module:attribute' "
                         f"(e.g. '{example}'), got {name!r}")
    try:
        target = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{key} '{name}' cannot be imported: {e}") from e
    if not callable(target):
        raise ValueError(f"{key} '{name}' is not callable")
    return target
