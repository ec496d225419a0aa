"""Check a config's keys against the constructors they are passed to, before any building.

A misspelt key (``model.synthesizer.pool.capacity`` for ``max_images``) otherwise fails deep
inside the build with ``__init__() got an unexpected keyword argument``, which names neither
where the key sits in the config nor what the class does take. This check walks ``model``,
the hooks, the loops, ``optim_wrapper`` and ``param_scheduler``, looks each ``type`` up in
mmdfkd's registries (which fall back to mmpretrain's and mmengine's) and names the full key
path, a close match and the accepted arguments.
"""
import difflib
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any

from mmengine.config import Config
from mmengine.registry import Registry

from mmdfkd.utils import is_model_reference, resolve_model_reference

# Subtrees built by another registry (weight initialisers), whose ``type`` names may collide
# with model names. Torchvision transform names (the ``augment`` lists) are looked up in
# ``torchvision.transforms.v2`` instead of the registry.
SKIPPED_KEYS = frozenset({'init_cfg'})
# Keys that code between the config and the class takes off a sub-config first, so the class
# never sees them: mmcv's build_norm_layer pops `requires_grad` from every `norm_cfg`, and
# mmpretrain's multimodal models pop `pretrained` from their encoders' configs to load those
# weights themselves. (A refused valid key would block a run; a missed one still fails in the
# build that follows.)
POPPED_BY_BUILDER = {'norm_cfg': frozenset({'requires_grad'}),
                     # mmpretrain's RandAugment / AutoAugment read these off each policy
                     'policies': frozenset({'magnitude_key', 'magnitude_range'})}
POPPED_FROM_SUB_MODELS = frozenset({'pretrained'})
# ...and that mmengine's runner takes off before building, by registry: a hook's `priority`
# (Runner.register_hook), an optimizer wrapper's `paramwise_cfg` and `constructor` (the
# optimizer wrapper constructor; DataFreeOptimWrapperConstructor reads them per entry), a
# scheduler's `convert_to_iter_based` (build_scheduler_from_cfg).
POPPED_BY_RUNNER = {'hook': frozenset({'priority'}),
                    'optim_wrapper': frozenset({'paramwise_cfg', 'constructor'}),
                    'parameter scheduler': frozenset({'convert_to_iter_based'})}


def _forwarded_arguments() -> dict[type, tuple[Callable, set[str]]]:
    """Classes whose ``**kwargs`` all go to one known callable (minus the arguments the class
    fills in itself): their keys can be checked against both signatures. mmengine's
    ``CheckpointHook`` hands them to ``Runner.save_checkpoint`` at its first save, so a
    misspelt ``default_hooks.checkpoint`` key used to fail only then, possibly hours in."""
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import Runner
    return {CheckpointHook: (Runner.save_checkpoint, {'self', 'filename'})}


def _named_arguments(factory: Callable) -> tuple[list[str], bool] | None:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    names = [p.name for p in parameters
             if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                           inspect.Parameter.KEYWORD_ONLY)]
    return names, any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


def _super_init_call(source: str) -> str | None:
    """The argument text of the ``super().__init__(...)`` call in ``source``, if any."""
    match = re.search(r'super\([^)]*\)\.__init__\(', source)  # also super(Cls, self)
    if match is None:
        return None
    depth, begin = 0, match.end() - 1
    for pos in range(begin, len(source)):
        depth += {'(': 1, ')': -1}.get(source[pos], 0)
        if depth == 0:
            return source[begin + 1:pos]
    return None


def _parent_with_init(cls: type) -> type | None:
    """The class whose ``__init__`` a ``super().__init__`` in ``cls.__init__`` calls."""
    mro = cls.__mro__
    owner = next((i for i, c in enumerate(mro) if '__init__' in vars(c)), None)
    if owner is None:
        return None
    return next((c for c in mro[owner + 1:] if '__init__' in vars(c)), None)


def _kwargs_forwarded_to_super(cls: type) -> list[str] | None:
    """For a class whose ``__init__`` only hands ``**kwargs`` on to ``super().__init__``
    (mmpretrain's heads and backbones: ``LinearClsHead(num_classes, in_channels, **kwargs)``
    -> ``ClsHead(loss, topk, cal_acc, init_cfg)``), the arguments of the classes up the chain;
    ``None`` where ``**kwargs`` may go anywhere else or the source cannot be read."""
    init = vars(cls).get('__init__') or next(
        (vars(c)['__init__'] for c in cls.__mro__ if '__init__' in vars(c)), None)
    try:
        source = inspect.getsource(init)
    except (OSError, TypeError):
        return None
    call = _super_init_call(source)
    kwargs_name = next((p.name for p in inspect.signature(init).parameters.values()
                        if p.kind is inspect.Parameter.VAR_KEYWORD), None)
    # **kwargs must appear once in the source besides the signature: in the super() call.
    if (call is None or kwargs_name is None or f'**{kwargs_name}' not in call
            or source.count(kwargs_name) != 2):
        return None
    parent = _parent_with_init(cls)
    if parent is None or parent is object:
        return None
    return accepted_arguments(parent)


def accepted_arguments(factory: Callable) -> list[str] | None:
    """The keyword arguments ``factory`` takes, or ``None`` when it takes any (``**kwargs``
    not forwarded to a known callable) or has no readable signature."""
    named = _named_arguments(factory)
    if named is None:
        return None
    names, var_keyword = named
    if not var_keyword:
        return names
    for cls, (target, filled) in _forwarded_arguments().items():
        if isinstance(factory, type) and issubclass(factory, cls):
            forwarded = _named_arguments(target)
            if forwarded is not None and not forwarded[1]:
                return names + [n for n in forwarded[0] if n not in filled and n not in names]
    if isinstance(factory, type):
        inherited = _kwargs_forwarded_to_super(factory)
        if inherited is not None:
            return names + [n for n in inherited if n not in names]
    return None


def _subtree_registries() -> dict[str, Registry]:
    """Keys whose values another registry builds than the one of the config around them:
    a visualizer's ``vis_backends``, and the ``augments`` of mmpretrain's batch augmentations
    (``data_preprocessor.batch_augments``, a classifier's ``train_cfg``)."""
    from mmpretrain.registry import BATCH_AUGMENTS, VISBACKENDS
    return {'vis_backends': VISBACKENDS, 'augments': BATCH_AUGMENTS}


# One registry, or several for a subtree that mixes them (``optim_wrapper``: wrappers and
# the optimizers inside them); a name is looked up in each in turn.
Registries = Registry | tuple[Registry, ...]


def _as_tuple(registry: Registries) -> tuple[Registry, ...]:
    return registry if isinstance(registry, tuple) else (registry, )


def _factory(node_type: Any, registry: Registries) -> Callable | None:
    if isinstance(node_type, str):
        for one in _as_tuple(registry):
            try:
                factory = one.get(node_type)
            except (KeyError, ImportError):
                factory = None
            if factory is not None:
                return factory
        return None
    return node_type if callable(node_type) else None


def _is_augment_list(parent_key: str) -> bool:
    """``augment``, ``local_augment``, ``student_augment``: lists of torchvision
    ``transforms.v2`` names (``BatchAugment``), not registry types."""
    return parent_key.endswith('augment')


def _augment_factory(name: str) -> Callable | None:
    from torchvision.transforms import v2

    from mmdfkd.models.utils.augment import EXTRA_TRANSFORMS
    factory = EXTRA_TRANSFORMS.get(name) or getattr(v2, name, None)
    return factory if isinstance(factory, type) else None


@functools.cache
def _names_in_any_registry() -> frozenset[str]:
    """Every name registered in any of mmpretrain's (and so mmengine's) or mmdfkd's registries:
    a ``type`` that one of them knows may be built by another registry than the one checked
    (a retriever's prototype ``dataset``, the ``pipeline`` of a hook's schedule)."""
    import mmpretrain.registry

    import mmdfkd.registry
    names = set()
    for module in (mmpretrain.registry, mmdfkd.registry):
        for attr in dir(module):
            node = getattr(module, attr)
            while isinstance(node, Registry):
                names.update(node.module_dict)
                node = node.parent
    return frozenset(names)


def _unknown_type_error(name: str, path: str,
                        registry: Registries | None) -> ValueError | None:
    """The error for a ``type`` nothing knows, naming its key path and the closest names; the
    build would only say ``KeyError: 'X is not in the mmdfkd::model registry'``, after the
    teacher and the other parts were built.

    ``registry=None`` is an ``augment`` list: only torchvision transforms go there. For a
    registry, ``None`` (no error) unless the name is close to one it holds and unknown to every
    other registry: config values may carry ``type`` keys of their own (LoRA's
    ``targets=[dict(type='qkv')]``), which only a likely misspelling is told apart from."""
    bare = name.rsplit('.', 1)[-1]
    if registry is None:
        from torchvision.transforms import v2

        from mmdfkd.models.utils.augment import EXTRA_TRANSFORMS
        known = [n for n in dir(v2) if isinstance(getattr(v2, n), type)]
        known += list(EXTRA_TRANSFORMS)
        where = ('torchvision.transforms.v2 or mmdfkd\'s '
                 f"{', '.join(EXTRA_TRANSFORMS)} (these lists are built by BatchAugment)")
        fix = 'a transform of its own is not possible here'
    else:
        if bare in _names_in_any_registry():
            return None
        known, places = [], []
        for one in _as_tuple(registry):
            scopes, node = [], one
            while node is not None:
                known += list(node.module_dict)
                scopes.append(node.scope)
                node = node.parent
            places.append(f"the {one.name} registry of {' / '.join(scopes)}")
        where = ' or '.join(places)
        fix = ("a type of your own must be registered first (custom_imports=dict(imports="
               "['your_module']))")
    close = difflib.get_close_matches(bare, known, n=3, cutoff=0.6)
    if registry is not None and not close:
        return None
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ''
    return ValueError(f"{path}.type: '{name}' is not in {where}.{hint} Fix the spelling; {fix}.")


def _path_accepting(key: str, node: Any, registry: Registries, path: str) -> str | None:
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


def _check_loss_weight(node: dict, factory: Callable | None, path: str) -> None:
    """Refuse a loss term's ``loss_weight`` that is not a finite number, with its key path
    (the loss itself can only name its class)."""
    from mmdfkd.models.losses.base import WeightedLoss, check_loss_weight
    if (isinstance(factory, type) and issubclass(factory, WeightedLoss)
            and 'loss_weight' in node):
        try:
            check_loss_weight(node['loss_weight'], factory.__name__)
        except ValueError as error:
            raise ValueError(f'{path}.loss_weight: {error}') from None


def check_config_keys(node: Any, registry: Registries, path: str,
                      names_checked: bool = True) -> None:
    """Raise ``ValueError`` for the first key under ``node`` that its ``type`` does not take,
    or the first ``type`` that is a likely misspelling of a registered name.

    Args:
        node: A config value (dict, list or leaf); dicts with a ``type`` are checked.
        registry: The registry the ``type`` names are looked up in (``mmdfkd.registry.MODELS``
            for ``model``; under a key ending in ``augment``, ``torchvision.transforms.v2``).
            A name it does not know but that is close to one it holds is refused with its key
            path and the closest names; other unknown names are left to the build to report.
        path: The node's key path for the message, e.g. ``'model'``.
        names_checked: ``False`` below a class whose arguments cannot be read (a placeholder
            for a model whose optional dependencies are missing): what it builds below it is
            unknown, so its ``type`` names are not checked (their keys still are).
    """
    if isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            check_config_keys(item, registry, f'{path}[{index}]', names_checked)
        return
    if not isinstance(node, dict):
        return
    if is_model_reference(node):
        # A classifier named by its config file: check the keys of the model it stands for,
        # overrides merged in (a misspelt override is reported like any other key).
        node = resolve_model_reference(node, path)
    if 'type' in node:
        parent_key = re.sub(r'\[\d+\]$', '', path).rsplit('.', 1)[-1]
        augment = _is_augment_list(parent_key) and isinstance(node['type'], str)
        factory = (_augment_factory(node['type']) if augment
                   else _factory(node['type'], registry))
        if factory is None and isinstance(node['type'], str) and names_checked:
            error = _unknown_type_error(node['type'], path, None if augment else registry)
            if error is not None:
                raise error
        accepted = accepted_arguments(factory) if factory is not None else None
        names_checked = names_checked and accepted is not None
        if accepted is not None:
            popped = POPPED_BY_BUILDER.get(parent_key, frozenset()).union(
                *(POPPED_BY_RUNNER.get(one.name, ()) for one in _as_tuple(registry)))
            if '.' in path:
                popped = popped | POPPED_FROM_SUB_MODELS
            for key in node:
                if key in ('type', '_scope_') or key in accepted or key in popped:
                    continue
                close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
                elsewhere = _path_accepting(key, node, registry, path)
                hint = (f" (did you mean '{close[0]}'?)" if close else
                        f' (did you mean {elsewhere}?)' if elsewhere else '')
                name = getattr(factory, '__name__', str(node['type']))
                module = ('torchvision.transforms.v2' if augment
                          and factory.__module__.startswith('torchvision')
                          else getattr(factory, '__module__', 'mmdfkd'))
                raise ValueError(
                    f"{path}.{key}: {name} takes no argument '{key}'{hint}. Its arguments: "
                    f"{', '.join(accepted)}. Remove or rename the key (its docstring: "
                    f"help({module}.{name})).")
        _check_loss_weight(node, factory, path)
    subtree_registries = _subtree_registries()
    for key, value in node.items():
        if key not in SKIPPED_KEYS:
            check_config_keys(value, subtree_registries.get(key, registry), f'{path}.{key}',
                              names_checked)


def check_runner_config_keys(cfg: Config) -> None:
    """Check the typed parts of a runner config against the classes they build: ``model``
    (model registry), ``custom_hooks`` and ``default_hooks`` (hooks), ``train_cfg`` /
    ``val_cfg`` / ``test_cfg`` when they name a loop, the optimizers and optimizer wrappers
    under ``optim_wrapper``, the schedulers of ``param_scheduler``, the metrics of
    ``val_evaluator`` / ``test_evaluator``, ``log_processor`` and ``visualizer`` (of the
    types mmengine's runner gives them when they name none), the datasets, pipeline
    transforms and samplers of the dataloaders; and the keys of ``randomness``
    against ``Runner.set_randomness``, which takes them as arguments."""
    from mmdfkd.registry import (HOOKS, LOG_PROCESSORS, LOOPS, METRICS, MODELS, OPTIM_WRAPPERS,
                                 OPTIMIZERS, PARAM_SCHEDULERS, VISUALIZERS)
    # A model whose arguments cannot be read is a placeholder for one whose optional
    # dependencies are missing (mmpretrain's multimodal models without `transformers`); its
    # datasets and parts are then not registered either, so their names are not checked.
    model_factory = _factory(cfg.model.get('type'), MODELS) if isinstance(
        cfg.get('model'), dict) else None
    names_checked = model_factory is None or accepted_arguments(model_factory) is not None
    if 'model' in cfg:
        check_config_keys(cfg.model, MODELS, 'model')
    for key, registry in (('custom_hooks', HOOKS), ('default_hooks', HOOKS),
                          ('train_cfg', LOOPS), ('val_cfg', LOOPS), ('test_cfg', LOOPS),
                          ('optim_wrapper', (OPTIM_WRAPPERS, OPTIMIZERS)),
                          ('param_scheduler', PARAM_SCHEDULERS),
                          ('val_evaluator', METRICS), ('test_evaluator', METRICS)):
        if cfg.get(key):
            check_config_keys(cfg[key], registry, key, names_checked)
    if isinstance(cfg.get('optim_wrapper'), dict):
        check_optimizer_settings(cfg.optim_wrapper)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if isinstance(cfg.get(key), dict):
            _check_dataloader_keys(cfg[key], key, names_checked)
    for key, registry, default_type in (('log_processor', LOG_PROCESSORS, 'LogProcessor'),
                                        ('visualizer', VISUALIZERS, 'Visualizer')):
        if isinstance(cfg.get(key), dict):
            check_config_keys(dict(dict(type=default_type), **cfg[key]), registry, key)
    if isinstance(cfg.get('randomness'), dict):
        from mmengine.runner import Runner
        accepted = [n for n in accepted_arguments(Runner.set_randomness) if n != 'self']
        for key in cfg['randomness']:
            if key not in accepted:
                close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ''
                raise ValueError(f"randomness.{key}: mmengine's Runner.set_randomness takes no "
                                 f"argument '{key}'{hint}. Its arguments: "
                                 f"{', '.join(accepted)}. Remove or rename the key.")
        seed = cfg['randomness'].get('seed')
        # numpy's own refusal ("Seed must be between 0 and 2**32 - 1") names no key.
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)
                                 or not 0 <= seed < 2**32):
            raise ValueError(f'randomness.seed must be an int in [0, 2**32 - 1] (or None for a '
                             f'random one), got {seed!r}')


# Words of torch.optim's setting checks and the argument each is about, in the order tried.
OPTIMIZER_MESSAGE_KEYS = (('learning rate', 'lr'), ('Nesterov', 'nesterov'),
                          ('momentum', 'momentum'), ('beta', 'betas'), ('epsilon', 'eps'),
                          ('weight_decay', 'weight_decay'), ('dampening', 'dampening'))


def _optimizer_configs(node: Any, path: str):
    """Every ``optimizer`` dict under an ``optim_wrapper`` config (one per named wrapper in a
    data-free config: ``optim_wrapper.student.optimizer``, ``optim_wrapper.generator...``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'optimizer' and isinstance(value, dict) and 'type' in value:
                yield value, f'{path}.{key}'
            elif isinstance(value, dict):
                yield from _optimizer_configs(value, f'{path}.{key}')


def check_optimizer_settings(optim_wrapper: Any, path: str = 'optim_wrapper') -> None:
    """Build each torch optimizer of ``optim_wrapper`` on one dummy parameter, so that a value
    torch refuses (``lr=-0.1``, ``betas=(1.2, 0.9)``, a string ``lr``) is reported with its
    key before the run builds the teacher and the rest; torch's own ``Invalid learning rate:
    -0.1`` names no key and came only then. Optimizers from outside ``torch.optim`` are left
    to the build (some need a process group or a model to be built at all).

    Raises:
        ValueError: naming the key path, the value and torch's message.
    """
    import torch

    from mmdfkd.registry import OPTIMIZERS
    for optimizer_cfg, optimizer_path in _optimizer_configs(optim_wrapper, path):
        factory = _factory(optimizer_cfg['type'], OPTIMIZERS)
        if not (isinstance(factory, type) and issubclass(factory, torch.optim.Optimizer)
                and factory.__module__.startswith('torch.optim')):
            continue
        settings = {k: v for k, v in optimizer_cfg.items() if k not in ('type', '_scope_')}
        try:
            factory([torch.zeros(1, requires_grad=True)], **settings)
        except (ValueError, TypeError) as err:
            message = str(err)
            key = next((key for words, key in OPTIMIZER_MESSAGE_KEYS
                        if words in message and key in settings), None)
            if key is None and isinstance(err, TypeError):
                # a wrongly typed value: the first setting that is not a number or bool
                key = next((k for k, v in settings.items()
                            if isinstance(v, str) and k not in ('foreach', 'differentiable')),
                           None)
            where = (f'{optimizer_path}.{key} = {settings[key]!r}' if key is not None
                     else f'{optimizer_path} ({settings})')
            raise ValueError(f'{where}: torch.optim.{factory.__name__} refuses it: '
                             f'"{message}". Set a valid value (learning rates, momenta and '
                             'weight decays are numbers >= 0, betas in [0, 1)).') from err
        except Exception:  # noqa: BLE001
            # Anything else may be about the dummy parameter (its device, say), not the
            # settings; the real build decides.
            continue


def _pipelines(node: Any, path: str):
    """Every ``pipeline`` list under a dataset config (wrappers' inner datasets too)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'pipeline' and isinstance(value, (list, tuple)):
                yield value, f'{path}.{key}'
            elif key not in SKIPPED_KEYS:
                yield from _pipelines(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for index, item in enumerate(node):
            yield from _pipelines(item, f'{path}[{index}]')


def _without_pipelines(node: Any) -> Any:
    """``node`` with every ``pipeline`` list emptied (the key stays, so it is still checked
    as an argument of its dataset)."""
    if isinstance(node, dict):
        return {key: [] if key == 'pipeline' and isinstance(value, (list, tuple))
                else _without_pipelines(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_without_pipelines(item) for item in node]
    return node


def _check_dataloader_keys(loader: dict, path: str, names_checked: bool = True) -> None:
    """A dataloader's dataset (datasets registry), the transforms of its pipelines and its
    sampler: a misspelt ``data_root`` or transform argument is refused like a model key."""
    from mmdfkd.registry import DATA_SAMPLERS, DATASETS, TRANSFORMS
    if isinstance(loader.get('dataset'), dict):
        # The pipelines' transform names are not datasets: they are checked next, against
        # the transforms registry.
        check_config_keys(_without_pipelines(loader['dataset']), DATASETS, f'{path}.dataset',
                          names_checked)
        for pipeline, pipeline_path in _pipelines(loader['dataset'], f'{path}.dataset'):
            check_config_keys(pipeline, TRANSFORMS, pipeline_path, names_checked)
    for key in ('sampler', 'batch_sampler'):
        if isinstance(loader.get(key), dict):
            check_config_keys(loader[key], DATA_SAMPLERS, f'{path}.{key}', names_checked)
