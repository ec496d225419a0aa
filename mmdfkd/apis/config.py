"""Config loading shared by ``tools/*.py`` and the benchmark, so all behave the same."""
import os
import os.path as osp

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
        raise FileNotFoundError(f'config {path} not found')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
        if 'data_root' in cfg_options:
            propagate_data_root(cfg, cfg_options)
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


DATALOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


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

    def differ(a, b):
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
