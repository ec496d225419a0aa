"""Classifiers named by another config file: ``dict(cfg_path='mmpretrain::resnet/...py')``.

A teacher or student is usually an mmpretrain model-zoo config or the user's own training
config. Copying its ``model`` dict into a data-free config is error-prone (a head's
``in_channels``, a backbone's stem); mmrazor's idiom is to name the file instead, and mmdfkd
accepts the same: wherever a classifier config goes (``model.teacher``,
``model.teacher.model``, ``model.student``, ``model.primer``, ...) a dict with ``cfg_path``
stands for that file's ``model``, and its other keys are merged into it as overrides
(``head=dict(num_classes=100)``; ``_delete_=True`` replaces a sub-dict). Only mmengine is
imported here: the model registry's build function uses it.
"""
import os
import os.path as osp
import warnings
from typing import Any

from mmengine.config import Config
from mmengine.registry import Registry


REFERENCE_KEY = 'cfg_path'


def is_model_reference(cfg: Any) -> bool:
    """Whether ``cfg`` is a ``dict(cfg_path=...)`` reference to another config's model."""
    return isinstance(cfg, dict) and REFERENCE_KEY in cfg


def load_referenced_config(cfg_path: str, key: str = REFERENCE_KEY) -> Config:
    """Read ``cfg_path``: a file, or ``'scope::path'`` inside an installed OpenMMLab package
    (``'mmpretrain::resnet/resnet18_8xb16_cifar10.py'``, read from the package's own copy of
    its configs; nothing is downloaded)."""
    try:
        if '::' in cfg_path:
            with warnings.catch_warnings():
                # mmengine.hub imports pkg_resources, whose deprecation warning is not the
                # user's business.
                warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
                from mmengine.hub import get_config
                return get_config(cfg_path)
        return Config.fromfile(cfg_path)
    except (FileNotFoundError, ModuleNotFoundError, ValueError) as err:
        relative = ('' if '::' in cfg_path or osp.isabs(cfg_path) else
                    f' A relative path is read from the working directory ({os.getcwd()}), '
                    "not from the referencing config's folder.")
        raise FileNotFoundError(
            f"{key}='{cfg_path}' cannot be read ({err}).{relative} Give a config file path or "
            "'mmpretrain::<folder>/<name>.py' (the folders of mmpretrain's configs/ directory, "
            "e.g. 'mmpretrain::resnet/resnet18_8xb16_cifar10.py').") from err
    except Exception as err:  # the file is there, but mmengine cannot read it
        raise ValueError(f"{key}='{cfg_path}' cannot be read as a config: "
                         f'{type(err).__name__}: {err}') from err


def resolve_model_reference(cfg: dict, key: str = 'model') -> dict:
    """The ``model`` of the config a ``dict(cfg_path=..., **overrides)`` names, with the
    overrides merged in; any other value is returned unchanged.

    Args:
        cfg: A classifier config, or a reference to one.
        key: Where ``cfg`` sits in the config, for error messages (e.g. ``'model.student'``).

    Raises:
        ValueError: ``pretrained=True`` (weights would be downloaded; give a checkpoint
            file instead) or a referenced config without a ``model``.
    """
    if not is_model_reference(cfg):
        return cfg
    overrides = {k: v for k, v in dict(cfg).items() if k not in (REFERENCE_KEY, 'pretrained')}
    if cfg.get('pretrained'):
        raise ValueError(
            f'{key}.pretrained=True would download the model zoo weights, which mmdfkd never '
            f'does: drop `pretrained` and give the checkpoint file (for a teacher '
            f'`--cfg-options teacher_ckpt=PATH`).')
    path = cfg[REFERENCE_KEY]
    if 'type' in overrides:
        # Typically a config inheriting a full model dict and adding cfg_path to it: merged
        # as overrides, the inherited keys would silently rebuild the old model.
        raise ValueError(
            f"{key} has both `{REFERENCE_KEY}` and `type`; a reference stands for the whole "
            f"model of '{path}' and takes only overrides of it (e.g. head=dict(num_classes=10))."
            f' In a config inheriting a model, replace it: {key.rsplit(".", 1)[-1]}='
            f"dict(_delete_=True, {REFERENCE_KEY}='{path}').")
    referenced = load_referenced_config(path, f'{key}.{REFERENCE_KEY}')
    if not isinstance(referenced.get('model'), dict):
        raise ValueError(f"{key}.{REFERENCE_KEY}='{path}' has no `model` to use; name a "
                         'classifier config (one with model=dict(type=...)).')
    if 'teacher' in referenced.model or 'student' in referenced.model:
        raise ValueError(f"{key}.{REFERENCE_KEY}='{path}' is a data-free config "
                         f"(model.type={referenced.model.get('type')}); name the classifier "
                         'config the model was trained with (e.g. configs/teachers/...).')
    merged = Config(dict(model=referenced.model.to_dict()))
    if overrides:
        merged.merge_from_dict(dict(model=overrides))
    return merged.model.to_dict()


def find_model_references(node: Any, path: str = 'model') -> list[tuple[str, dict]]:
    """``(key path, reference)`` of every ``cfg_path`` reference under ``node``."""
    if is_model_reference(node):
        return [(path, node)]
    if isinstance(node, dict):
        return [found for key, value in node.items()
                for found in find_model_references(value, f'{path}.{key}')]
    if isinstance(node, (list, tuple)):
        return [found for i, value in enumerate(node)
                for found in find_model_references(value, f'{path}[{i}]')]
    return []


def referenced_data_preprocessor(cfg: Any) -> dict | None:
    """The data preprocessor a referenced config normalises its inputs with: the model's own
    or the config's top-level ``data_preprocessor`` (mmpretrain configs keep it there);
    ``None`` for a plain model dict or a config without one."""
    if not is_model_reference(cfg):
        return None
    referenced = load_referenced_config(cfg[REFERENCE_KEY])
    preprocessor = referenced.model.get('data_preprocessor') or referenced.get(
        'data_preprocessor')
    return preprocessor.to_dict() if hasattr(preprocessor, 'to_dict') else preprocessor


def build_model_resolving_references(cfg: Any, registry: Registry, *args, **kwargs) -> Any:
    """The model registry's build function: resolve a ``cfg_path`` reference, then build as
    mmengine does (lists of configs become an ``nn.Sequential``)."""
    from mmengine.registry import build_model_from_cfg
    return build_model_from_cfg(resolve_model_reference(cfg), registry, *args, **kwargs)
