"""Train a config for a few tiny iterations: does it build and run on this device?

Used by the tests (every shipped config trains an iteration) and by
``tools/misc/smoke_configs.py``, which runs the same check on whatever device the runner
picks (a GPU when there is one) without any dataset or trained teacher.
"""
import os
import os.path as osp
import time
import traceback
import uuid

import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmdfkd.apis.config import build_runner, load_config
from mmdfkd.apis.random_pipelines import save_random_latent_pipeline, save_random_pixel_pipeline
from mmdfkd.registry import MODELS


def uses_inversion_pool(config: str) -> bool:
    """Whether a config is one of the model-inversion methods that fill a data pool."""
    return osp.basename(config).split('_')[0] in ('deepinversion', 'cmi', 'fast')


def one_iteration_options(config: str, teacher_ckpt: str) -> dict:
    """Overrides for one tiny synthesis + student iteration of a config with no evaluation
    (for settings without their dataset on this machine, e.g. CIFAR). DIP-KD runs its four
    phases one iteration each on 8 priors."""
    opts = {'teacher_ckpt': teacher_ckpt, 'train_cfg.val_interval': 1,
            'default_hooks.checkpoint.interval': 1, 'custom_hooks': [],
            'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None,
            'test_dataloader': None, 'test_cfg': None, 'test_evaluator': None}
    if 'dipkd' in config:  # the DIP-KD configs and naive KD on noise (configs/dipkd/)
        phases = {'synthesis': 1, 'primer': 1, 'contrast': 1, 'distill': 1}
        if osp.isfile(config):  # a phase the config switches off (e.g. naive KD) stays off
            configured = Config.fromfile(config).model.get('phase_iters', {})
            phases.update({k: 0 for k, v in configured.items() if v == 0})
        opts.update({f'model.phase_iters.{k}': v for k, v in phases.items()})
        opts.update({'train_cfg.max_iters': sum(phases.values()),
                     'model.synthesizer.num_images': 8,
                     'model.synthesizer.batch_size': 8, 'model.batch_size': 4,
                     'model.teacher.query_budget': 8,
                     'model.synthesizer.pool.max_images': 8})
        return opts
    opts.update({'train_cfg.max_iters': 1, 'model.synthesizer.batch_size': 4,
                 'model.student_steps': 1, 'model.student_batch_size': 4,
                 'model.synthesizer_steps': 1})
    if uses_inversion_pool(config):  # model inversion: a few inner steps, no warm-up
        opts.update({'model.synthesizer.iterations': 1, 'model.warmup_iters': 0})
    if osp.basename(config).startswith('cmi'):
        opts['model.synthesizer.contrastive.bank_size'] = 16
    if osp.basename(config).startswith('diffdfkd'):
        # A few denoising steps, with a latent CutMix and its seam repair among them.
        opts.update({'model.synthesizer.num_inference_steps': 4,
                     'model.synthesizer.cutmix_every': 2})
    return opts


def random_pipeline_options(config: str, work_dir: str, cfg_options: dict | None = None,
                            seed: int = 0) -> dict:
    """For a DiffDFKD config whose ``model.synthesizer.pipeline_path`` (after
    ``cfg_options``) is not a local folder: save a tiny random pipeline of the layout the
    recipe expects into ``work_dir`` and return the override that points the config at it.
    The layout is Stable Diffusion's when the recipe prompts with class names, a pixel-space
    DDPM of the recipe's channels otherwise. ``{}`` for every other config, and for one whose
    pipeline is there (it is what gets checked then)."""
    synthesizer = Config.fromfile(config).model.get('synthesizer') or {}
    if synthesizer.get('type') != 'DiffusionSynthesizer':
        return {}
    path = (cfg_options or {}).get('model.synthesizer.pipeline_path',
                                   synthesizer.get('pipeline_path'))
    if path and osp.isdir(path):
        return {}
    target = osp.join(work_dir, 'random_pipeline')
    if synthesizer.get('class_names') or synthesizer.get('prompt_template'):
        save_random_latent_pipeline(target, seed=seed)
    else:
        save_random_pixel_pipeline(target, channels=synthesizer['image_shape'][0], seed=seed)
    return {'model.synthesizer.pipeline_path': target}


def random_teacher_checkpoint(config: str, path: str, seed: int = 0) -> str:
    """Save the config's teacher architecture with random weights to ``path``: enough to
    check that a recipe runs, with no trained teacher at hand."""
    cfg = Config.fromfile(config)
    teacher = cfg.model.teacher
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope('mmdfkd'):
        model = MODELS.build(teacher.get('model', teacher))
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path


def smoke_train(config: str, work_dir: str, teacher_ckpt: str | None = None,
                amp: bool = False, val_images: int = 0,
                cfg_options: dict | None = None) -> dict:
    """Build ``config`` and train it for one tiny iteration (four for DIP-KD's phases).

    Args:
        config: Config file.
        work_dir: Where the run writes its log and checkpoint.
        teacher_ckpt: Teacher checkpoint; ``None`` saves the config's teacher with random
            weights into ``work_dir`` (the check is that the recipe runs, not how well). A
            DiffDFKD recipe whose diffusion model is not on this machine gets a tiny random
            one the same way (``random_pipeline_options``).
        amp: What ``tools/train.py --amp`` does (needs an accelerator).
        val_images: Validate on the first N images of the config's test split after the
            iteration; 0 drops validation (no dataset needed).
        cfg_options: Further overrides, applied last.

    Returns:
        ``config``, ``ok``, ``seconds``, the ``device`` the student trained on, ``iter``,
        ``random_pipeline`` (the stand-in's folder) when one was made, and on failure
        ``error`` (the exception's last line) and ``traceback``.
    """
    start = time.perf_counter()
    result: dict = dict(config=config, ok=False, device=None, iter=0)
    try:
        if teacher_ckpt is None:
            os.makedirs(work_dir, exist_ok=True)
            teacher_ckpt = random_teacher_checkpoint(config, osp.join(work_dir, 'teacher.pth'))
        opts = one_iteration_options(config, teacher_ckpt)
        if val_images:
            for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
                opts.pop(key)
            opts.update({'val_dataloader.dataset.indices': val_images,
                         'val_dataloader.num_workers': 0,
                         'val_dataloader.persistent_workers': False})
        opts.update(cfg_options or {})
        pipeline = random_pipeline_options(config, work_dir, opts)
        if pipeline:
            result['random_pipeline'] = pipeline['model.synthesizer.pipeline_path']
            opts.update(pipeline)
        cfg = load_config(config, cfg_options=opts, work_dir=work_dir, amp=amp)
        # mmengine keys its global visualizer by experiment name (second resolution):
        # runners built within the same second would share one.
        cfg.experiment_name = f'smoke_{uuid.uuid4().hex[:12]}'
        runner = build_runner(cfg)
        runner.train()
        student = getattr(runner.model, 'module', runner.model).student
        result.update(ok=True, iter=runner.iter,
                      device=str(next(student.parameters()).device))
    except Exception as error:  # reported per config; the caller decides the exit code
        result.update(error=f'{type(error).__name__}: {error}'.splitlines()[0][:300],
                      traceback=traceback.format_exc())
    result['seconds'] = round(time.perf_counter() - start, 2)
    return result
