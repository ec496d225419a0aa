"""Config loading shared by ``tools/*.py`` and the benchmark, so all behave the same."""
import ast
import os
import os.path as osp
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmdfkd  # noqa: F401  (registers modules and the resume-safe checkpoint loader)
from mmdfkd.apis.config_keys import check_runner_config_keys
from mmdfkd.engine.optimizers.mixed_precision import amp_device_available
from mmdfkd.utils import is_model_reference, referenced_data_preprocessor


def load_config(path: str, cfg_options: dict | None = None, work_dir: str | None = None,
                launcher: str = 'none', amp: bool = False, resume: str | None = None,
                no_validate: bool = False, auto_scale_lr: bool = False) -> Config:
    """Read a config and apply the command-line switches of ``tools/train.py``.

    Args:
        path: Config file.
        cfg_options: ``--cfg-options`` overrides; ``data_root`` reaches every dataloader.
        work_dir: Output folder; defaults to ``work_dirs/<config name>``.
        launcher: ``none``/``pytorch``/``slurm``/``mpi``. Without a GPU the distributed
            backend falls back to gloo.
        amp: Use ``AmpOptimWrapper`` (for each wrapper of a data-free optim_wrapper dict):
            the updates each wrapper makes run under its autocast and loss scaler, except
            pixel and inner-loop optimisers, which stay in float32. Needs an accelerator.
        resume: ``'auto'`` for the latest checkpoint in ``work_dir`` or a checkpoint path.
        no_validate: Drop validation during training.
        auto_scale_lr: Enable ``auto_scale_lr``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'config {path} not found{_closest_config(path)}')
    cfg = Config.fromfile(path)
    check_redefined_variables(cfg, path)
    merge_cfg_options(cfg, cfg_options, path)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('work_dirs', osp.splitext(osp.basename(path))[0])
    # Assign whole dicts: Config.setdefault stores a converted copy of a new default, so
    # writing into what it returns was lost (`--auto-scale-lr` used to do nothing).
    if launcher != 'none' and not torch.cuda.is_available():
        env_cfg = dict(cfg.get('env_cfg') or {})
        env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
        cfg.env_cfg = env_cfg
    if amp:
        if not amp_device_available():
            raise ValueError(
                '--amp: mixed precision (mmengine\'s AmpOptimWrapper) needs a CUDA, NPU, MLU '
                'or MUSA device, and this machine has none. Run without --amp.')
        wrappers = cfg.optim_wrapper
        targets = ([w for k, w in wrappers.items() if isinstance(w, dict) and 'optimizer' in w]
                   if 'constructor' in wrappers else [wrappers])
        for w in targets:
            w['type'] = 'AmpOptimWrapper'
            w.setdefault('loss_scale', 'dynamic')
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        cfg.resume, cfg.load_from = True, resume
    if no_validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if auto_scale_lr:
        cfg.auto_scale_lr = dict(cfg.get('auto_scale_lr') or {}, enable=True)
    return cfg


def _closest_config(path: str) -> str:
    """`` (did you mean ...?)`` with the config file whose path is closest to a missing
    ``path``: the one in its folder, or anywhere under the ``configs/`` folder it names."""
    import difflib
    import glob
    parts = osp.normpath(path).split(os.sep)
    root = os.sep.join(parts[:parts.index('configs') + 1]) if 'configs' in parts else None
    folder = osp.dirname(path) or '.'
    pool = (glob.glob(osp.join(folder, '*.py')) if osp.isdir(folder) else []) or (
        glob.glob(osp.join(root, '**', '*.py'), recursive=True) if root and osp.isdir(root)
        else [])
    pool = [p for p in pool if '_base_' not in p.split(os.sep)]
    by_name = {osp.basename(p): p for p in pool}
    close = difflib.get_close_matches(osp.basename(path), by_name, n=1, cutoff=0.5)
    return f' (did you mean {by_name[close[0]]}?)' if close else ''


DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')

# Top-level keys something reads after the file is parsed: mmengine's runner (``from_cfg``
# and the runner's own ``self.cfg.get``), the tools (``runner_type``), the config parser
# (``custom_imports``) and the two variables mmdfkd carries to where they are used.
READ_TOP_LEVEL_KEYS = frozenset((
    'model', 'work_dir', 'train_dataloader', 'val_dataloader', 'test_dataloader', 'train_cfg',
    'val_cfg', 'test_cfg', 'auto_scale_lr', 'optim_wrapper', 'param_scheduler',
    'val_evaluator', 'test_evaluator', 'default_hooks', 'custom_hooks', 'data_preprocessor',
    'load_from', 'resume', 'launcher', 'env_cfg', 'log_processor', 'log_level', 'visualizer',
    'default_scope', 'randomness', 'experiment_name', 'model_wrapper_cfg', 'compile',
    'activation_checkpointing', 'efficient_conv_bn_eval', 'sync_bn', 'runner_type',
    'custom_imports', 'teacher_ckpt', 'data_root'))


def _leaf_paths(node: Any, path: str = '') -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every leaf under ``node`` (list items by index)."""
    items = (node.items() if isinstance(node, dict)
             else enumerate(node) if isinstance(node, (list, tuple)) else None)
    if items is None:
        yield path, node
        return
    for key, value in items:
        yield from _leaf_paths(value, f'{path}.{key}' if path else str(key))


def _named_nodes(node: Any, path: str = '') -> Iterator[tuple[str, Any]]:
    """(dotted path, value) of every dict entry under ``node``, inner dicts included."""
    items = (node.items() if isinstance(node, dict)
             else enumerate(node) if isinstance(node, (list, tuple)) else ())
    for key, value in items:
        here = f'{path}.{key}' if path else str(key)
        yield here, value
        yield from _named_nodes(value, here)


def check_redefined_variables(cfg: Config, path: str) -> None:
    """Refuse a config that redefines a variable of its ``_base_`` where the base's keys
    still hold the base's value.

    mmengine substitutes a base's variables when the base is read: a child config with
    ``max_iters = 300`` under a base whose ``train_cfg = dict(max_iters=max_iters)`` still
    trains the base's 700 iterations, without a word. Keys of the same name as the variable
    that still hold the base's value are named, with the line to add.
    """
    try:
        base_files = [Config._get_cfg_path(base, path)[0]
                      for base in Config._get_base_files(path)]
    except Exception:  # mmengine's private helpers; without them there is nothing to check
        return
    nodes = {p: v for p, v in _named_nodes(cfg.to_dict())
             if '.' in p and p.split('.', 1)[0] in READ_TOP_LEVEL_KEYS}
    for base_file in base_files:
        try:
            base = Config.fromfile(base_file)
        except Exception:  # a base in another package's scope: not ours to check
            continue
        base_nodes = dict(_named_nodes(base.to_dict()))
        for name, old in base.items():
            # data_root is carried to the dataloaders from --cfg-options only, so a
            # redefined one is checked like any variable.
            if ((name in READ_TOP_LEVEL_KEYS and name != 'data_root') or name.startswith('_')
                    or name not in cfg
                    or cfg[name] == old):
                continue
            stale = [p for p, v in nodes.items() if p.rsplit('.', 1)[-1] == name
                     and v == old and base_nodes.get(p) == old]
            if stale:
                raise ValueError(
                    f'{path} sets {name} = {cfg[name]!r}, but {", ".join(stale)} still '
                    f'hold{"s" if len(stale) == 1 else ""} {old!r}, the value of {name} in '
                    f'its base {base_file}: mmengine '
                    "substitutes a base's variables when the base is read, so redefining "
                    'one changes nothing there. Set those keys in the config too, e.g. '
                    + '; '.join(f'{p.split(".", 1)[0]} = dict({_nested(p, name)})'
                                for p in stale[:2]) + '.')


def _nested(path: str, name: str) -> str:
    """``train_cfg.max_iters`` -> ``max_iters=max_iters``; deeper keys nest dicts."""
    parts = path.split('.')[1:]
    inner = f'{parts[-1]}={name}'
    for part in reversed(parts[:-1]):
        inner = f'{part}=dict({inner})' if not part.isdigit() else inner
    return inner


def keys_following_variable(path: str, name: str, value: Any
                            ) -> dict[str, tuple[Any, Any]] | None:
    """The keys whose value changes when the config file at ``path`` assigns ``value`` to its
    top-level variable ``name`` (the keys it is substituted into and those computed from it,
    e.g. DIP-KD's ``num_images`` -> ``model.teacher.query_budget``, ``model.phase_iters.*``,
    ``train_cfg.max_iters``), each with its ``(old, new)`` value: the file that assigns it
    (this one or a ``_base_``) is read again with that one assignment changed; keys this file
    sets itself are not among them. ``None`` when no file assigns ``name`` or one cannot be
    read that way."""
    try:
        with open(path) as f:
            source = f.read()
        lines = source.splitlines()
        tree = ast.parse(source)
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None

    def assigns(node: ast.stmt, target: str) -> bool:
        return isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == target for t in node.targets)

    found = [n for n in tree.body if assigns(n, name)]
    folder = osp.dirname(osp.abspath(path))
    if not found:
        # A base's variable: what changes there and is not set again here.
        for base in _base_files(tree, folder):
            following = keys_following_variable(base, name, value)
            if following:
                try:
                    here = dict(_leaf_paths(Config.fromfile(path).to_dict()))
                except Exception:
                    return None
                return {p: (o, n) for p, (o, n) in following.items() if here.get(p) == o}
        return None
    replaced = {found[-1].lineno: f'{name} = {value!r}'}
    skipped = set(range(found[-1].lineno + 1, found[-1].end_lineno + 1))
    # _base_ paths are relative to the file's folder; the copy is read from another one.
    for node in tree.body:
        if assigns(node, '_base_'):
            replaced[node.lineno] = f'_base_ = {_base_files(tree, folder, keep_scoped=True)!r}'
            skipped |= set(range(node.lineno + 1, node.end_lineno + 1))
    text = '\n'.join(replaced.get(i, line) for i, line in enumerate(lines, 1)
                      if i not in skipped)
    with tempfile.TemporaryDirectory() as tmp:
        copy = osp.join(tmp, osp.basename(path))
        with open(copy, 'w') as f:
            f.write(text + '\n')
        try:
            before, after = Config.fromfile(path), Config.fromfile(copy)
        except Exception:  # what the new value does to the file is the run's error to report
            return None
    old = dict(_leaf_paths(before.to_dict()))
    return {p: (old.get(p), v) for p, v in _leaf_paths(after.to_dict())
            if p.split('.', 1)[0] in READ_TOP_LEVEL_KEYS and (p not in old or old[p] != v)}


def _base_files(tree: ast.Module, folder: str, keep_scoped: bool = False) -> list[str]:
    """A parsed config's ``_base_`` entries as absolute paths (``pkg::`` ones only with
    ``keep_scoped``, as they are: they name another package's files)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            try:
                bases = ast.literal_eval(node.value)
            except ValueError:
                return []
            bases = [bases] if isinstance(bases, str) else list(bases)
            return [b if osp.isabs(b) or '::' in b else osp.normpath(osp.join(folder, b))
                    for b in bases if keep_scoped or '::' not in b]
    return []


def merge_cfg_options(cfg: Config, cfg_options: dict | None, path: str) -> None:
    """Apply ``--cfg-options`` to ``cfg`` (read from ``path``) as every tool does: keys nothing
    would read are refused (``check_top_level_options``) and ``data_root`` reaches every
    dataloader."""
    if not cfg_options:
        return
    check_top_level_options(cfg, cfg_options, path)
    cfg.merge_from_dict(cfg_options)
    if 'data_root' in cfg_options:
        propagate_data_root(cfg, cfg_options)


def check_top_level_options(cfg: Config, cfg_options: dict, path: str) -> None:
    """Refuse a ``--cfg-options`` key that nothing reads: one under a config variable, or a
    new top-level key.

    A config's own variables (``max_iters = 700`` used as ``train_cfg.max_iters``) are
    substituted where they are used while the file is parsed, so overriding one afterwards
    changed nothing: ``--cfg-options max_iters=5`` ran all 700 iterations without a word.
    The message names the keys to set with their values: every key that follows from the
    variable, found by reading the config again with the new value
    (:func:`keys_following_variable`), else the keys that hold the variable's value (a
    variable whose value no key holds goes through: custom code may read it from
    ``runner.cfg``); a new key nothing reads (a typo) is refused with the closest key of the
    config.
    """
    import difflib
    all_leaves = dict(_leaf_paths(cfg.to_dict()))
    # Keys under another variable (``phase_iters.synthesis``) are read by nothing either.
    leaves = {p: v for p, v in all_leaves.items()
              if '.' in p and p.split('.', 1)[0] in READ_TOP_LEVEL_KEYS}
    for key, value in cfg_options.items():
        root, name = key.split('.', 1)[0], key.rsplit('.', 1)[-1]
        if root in READ_TOP_LEVEL_KEYS:
            continue
        if root in cfg:
            old = all_leaves.get(key, cfg[root] if root == key else None)
            following = keys_following_variable(path, root, value) if root == key else None
            if following:
                raise ValueError(
                    f'--cfg-options {key}={value!r}: {root} is a variable of {path}, '
                    'substituted where the file uses it while the file is read, so changing '
                    'it afterwards changes nothing; set the keys that follow from it instead '
                    f'(what the config gives with {root} = {value!r}): '
                    + ' '.join(f'{p}={v!r}' for p, (_, v) in following.items()) + '.')
            same_name = [p for p in leaves if p.rsplit('.', 1)[-1] == name]
            # Only a distinctive value is looked for: 0, 1 and flags turn up everywhere.
            distinctive = (isinstance(old, (str, float)) or (
                isinstance(old, int) and not isinstance(old, bool) and old not in (0, 1)))
            same_value = [p for p, v in leaves.items() if distinctive and p not in same_name
                          and type(v) is type(old) and v == old]
            where = same_name + same_value
            if not where:
                # Used nowhere in the config: a setting a custom component may read from
                # runner.cfg at run time, so the override is let through.
                continue
            hint = (f'set the key(s) that hold its value {old!r} instead: '
                    + ', '.join(f'{p}={value!r}' for p in where[:6]))
            raise ValueError(
                f'--cfg-options {key}={value!r}: {root} is a variable of {path}, substituted '
                'where the file uses it while the file is read, so changing it afterwards '
                f'changes nothing; {hint}.')
        by_name = {p.rsplit('.', 1)[-1]: p for p in reversed(list(leaves))}
        close = (difflib.get_close_matches(key, [*READ_TOP_LEVEL_KEYS, *leaves], n=1,
                                           cutoff=0.6)
                 or [by_name[n] for n in difflib.get_close_matches(name, by_name, n=1,
                                                                   cutoff=0.6)])
        suggestion = f' (did you mean {close[0]}?)' if close else ''
        raise ValueError(
            f'--cfg-options {key}={value!r}: {path} has no top-level {root} and nothing reads '
            f'one{suggestion}; give the full dotted key of the setting to change.')


def propagate_data_root(cfg: Config, cfg_options: dict) -> None:
    """Point every dataloader's dataset at ``--cfg-options data_root=DIR``.

    The configs' top-level ``data_root`` variable is substituted when the file is read, so
    overriding it alone changed nothing; a loader whose own ``<loader>.dataset.data_root`` is
    overridden too keeps that one. Dataset wrappers are followed through their ``dataset``.
    """
    root = cfg_options['data_root']
    for key in DATALOADERS:
        loader = cfg.get(key)
        if not isinstance(loader, dict) or f'{key}.dataset.data_root' in cfg_options:
            continue
        dataset = loader.get('dataset')
        while isinstance(dataset, dict):
            if 'data_root' in dataset:
                dataset['data_root'] = root
            dataset = dataset.get('dataset')


def _normalisation(preprocessor: dict) -> tuple:
    return tuple(None if preprocessor.get(k) is None else [float(v) for v in preprocessor[k]]
                 for k in ('mean', 'std'))


def check_teacher_normalisation(cfg: Config) -> None:
    """Refuse a teacher named by its config file (``cfg_path``) whose inputs were normalised
    differently from what ``model.data_preprocessor`` does to the test split.

    Synthetic images are made in the teacher's input space, so the student learns in the
    teacher's normalisation; evaluated on real images normalised another way it would score
    far below what it learnt, with nothing in the log to say why.
    """
    model = cfg.get('model')
    teacher = model.get('teacher') if isinstance(model, dict) else None
    if is_model_reference(teacher):
        reference, key = teacher, 'model.teacher'
    elif isinstance(teacher, dict) and is_model_reference(teacher.get('model')):
        reference, key = teacher['model'], 'model.teacher.model'
    else:
        return
    theirs = referenced_data_preprocessor(reference)
    ours = model.get('data_preprocessor')
    if not theirs or not isinstance(ours, dict):
        return
    (t_mean, t_std), (o_mean, o_std) = _normalisation(theirs), _normalisation(ours)

    def differ(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
        return (a is None) != (b is None) or (a is not None and (
            len(a) != len(b) or any(abs(x - y) > 1e-3 for x, y in zip(a, b))))

    if differ(t_mean, o_mean) or differ(t_std, o_std):
        raise ValueError(
            f"{key}.cfg_path='{reference['cfg_path']}' normalises its inputs with mean "
            f'{t_mean} and std {t_std}, but model.data_preprocessor normalises the test split '
            f'with mean {o_mean} and std {o_std}: the student learns in the teacher\'s input '
            'space and would be tested in another. Set model.data_preprocessor.mean and .std '
            "to the teacher's (and the synthesizer's mean/std or pixel range where it has "
            'them).')


def build_runner(cfg: Config) -> Runner:
    """Build the runner named by ``cfg.runner_type`` (``DataFreeRunner`` for data-free
    configs) or mmengine's ``Runner``, after checking the keys of ``cfg.model`` and
    ``cfg.custom_hooks`` against the classes they configure (``check_runner_config_keys``)."""
    check_runner_config_keys(cfg)
    check_teacher_normalisation(cfg)
    if cfg.get('launcher', 'none') == 'pytorch':
        missing = [v for v in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
                   if v not in os.environ]
        if missing:
            # torch's own error names only the first variable, not how to get them.
            raise ValueError(f'--launcher pytorch needs the environment torchrun sets (missing '
                             f"{', '.join(missing)}): start with `bash tools/dist_train.sh "
                             'CONFIG NUM_PROCESSES` or `torchrun --nproc_per_node N '
                             'tools/train.py CONFIG --launcher pytorch`, or leave out '
                             '--launcher for one process.')
    if cfg.get('launcher', 'none') == 'pytorch' and not torch.cuda.is_available():
        _init_cpu_process_group(cfg)
    if 'runner_type' in cfg:
        from mmdfkd.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def _init_cpu_process_group(cfg: Config) -> None:
    """Start the gloo process group on CPU-only machines.

    mmengine 0.10.7's ``init_dist`` calls ``torch.cuda.set_device`` unconditionally for the
    ``pytorch`` launcher, which fails without a GPU; the runner skips ``init_dist`` when a
    process group already exists, so we create it here.
    """
    import torch.distributed as torch_dist
    if torch_dist.is_initialized():
        return
    backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'gloo')
    if backend != 'gloo':
        raise ValueError(f"env_cfg.dist_cfg.backend='{backend}' needs GPUs; use 'gloo' on CPU.")
    torch_dist.init_process_group(backend='gloo')


def finish_distributed() -> None:
    """Let every rank finish before any exits, then close the process group.

    Without the barrier a rank that finishes first can close its gloo connections while
    another still uses them, and that rank aborts (SIGABRT) at the very end of a good run.

    The barrier's work is then kept alive until the process exits, on purpose. Gloo's worker
    thread drops its own reference to a finished work a moment after ``wait()`` returns, and
    the barrier's work holds every work still in flight when it was queued (the last
    broadcast of the run, say), whose tensors belong to Python objects. Under load that
    moment can come after the interpreter has begun to shut down: freeing those tensors then
    needs the GIL, Python ends the thread, and the process dies with "terminate called
    without an active exception" (SIGABRT, a failed run; seen in CI). The gloo threads are
    not joined by ``destroy_process_group`` while a DDP wrapper lives, so waiting for them is
    not possible. A work that is never freed frees no Python objects from a gloo thread.
    """
    import ctypes

    import torch.distributed as torch_dist
    if torch_dist.is_available() and torch_dist.is_initialized():
        barrier = torch_dist.barrier(async_op=True)
        barrier.wait()
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(barrier))
        torch_dist.destroy_process_group()
