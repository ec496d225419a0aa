"""Check a config's keys against the constructors they are passed to, before any building.

A misspelt key (``model.synthesizer.pool.capacity`` for ``max_images``) otherwise fails deep
inside the build with ``__init__() got an unexpected keyword argument``, which names neither
where the key sits in the config nor what the class does take. This check walks ``model`` and
``custom_hooks``, looks each ``type`` up in mmdfkd's registries (which fall back to
mmpretrain's and mmengine's) and names the full key path, a close match and the accepted
arguments.
"""
import difflib
import inspect
from collections.abc import Callable
from typing import Any

from mmengine.registry import Registry

# Subtrees built by another registry (weight initialisers), whose ``type`` names may collide
# with model names. Other foreign types (torchvision transform names in ``augment``) are not in
# the model registry and so are left alone anyway.
SKIPPED_KEYS = frozenset({'init_cfg'})


def accepted_arguments(factory: Callable) -> list[str] | None:
    """The keyword arguments ``factory`` takes, or ``None`` when it takes any (``**kwargs``)
    or has no readable signature."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                          inspect.Parameter.KEYWORD_ONLY)]


def _factory(node_type: Any, registry: Registry) -> Callable | None:
    if isinstance(node_type, str):
        try:
            return registry.get(node_type)
        except (KeyError, ImportError):
            return None
    return node_type if callable(node_type) else None


def _path_accepting(key: str, node: Any, registry: Registry, path: str) -> str | None:
    """``key``'s path under the first typed dict inside ``node`` (not ``node`` itself) whose
    class takes it: for a key set too high, e.g. ``model.query_budget``, the
    ``model.teacher.query_budget`` it belongs at."""
    children = (node.items() if isinstance(node, dict) else
                ((f'[{i}]', v) for i, v in enumerate(node)) if isinstance(node, (list, tuple))
                else ())
    for child_key, child in children:
        if child_key in SKIPPED_KEYS or not isinstance(child, (dict, list, tuple)):
            continue
        child_path = f'{path}{child_key}' if child_key.startswith('[') else f'{path}.{child_key}'
        if isinstance(child, dict) and 'type' in child:
            factory = _factory(child['type'], registry)
            accepted = accepted_arguments(factory) if factory is not None else None
            if accepted is not None and key in accepted:
                return f'{child_path}.{key}'
        found = _path_accepting(key, child, registry, child_path)
        if found:
            return found
    return None


def check_config_keys(node: Any, registry: Registry, path: str) -> None:
    """Raise ``ValueError`` for the first key under ``node`` that its ``type`` does not take.

    Args:
        node: A config value (dict, list or leaf); dicts with a ``type`` are checked.
        registry: The registry the ``type`` names are looked up in (``mmdfkd.registry.MODELS``
            for ``model``); names it does not know are left to the build to report.
        path: The node's key path for the message, e.g. ``'model'``.
    """
    if isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            check_config_keys(item, registry, f'{path}[{index}]')
        return
    if not isinstance(node, dict):
        return
    if 'type' in node:
        factory = _factory(node['type'], registry)
        accepted = accepted_arguments(factory) if factory is not None else None
        if accepted is not None:
            for key in node:
                if key in ('type', '_scope_') or key in accepted:
                    continue
                close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
                elsewhere = _path_accepting(key, node, registry, path)
                hint = (f" (did you mean '{close[0]}'?)" if close else
                        f' (did you mean {elsewhere}?)' if elsewhere else '')
                name = getattr(factory, '__name__', str(node['type']))
                raise ValueError(
                    f"{path}.{key}: {name} takes no argument '{key}'{hint}. Its arguments: "
                    f"{', '.join(accepted)}. Remove or rename the key (its docstring: "
                    f"help({getattr(factory, '__module__', 'mmdfkd')}.{name})).")
    for key, value in node.items():
        if key not in SKIPPED_KEYS:
            check_config_keys(value, registry, f'{path}.{key}')


def check_runner_config_keys(cfg) -> None:
    """Check ``cfg.model`` against the model registry and ``cfg.custom_hooks`` against the
    hook registry (the parts of a config that name mmdfkd's classes)."""
    from mmdfkd.registry import HOOKS, MODELS
    if 'model' in cfg:
        check_config_keys(cfg.model, MODELS, 'model')
    if cfg.get('custom_hooks'):
        check_config_keys(cfg.custom_hooks, HOOKS, 'custom_hooks')
