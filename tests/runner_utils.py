"""Helpers to build real runners from the shipped configs with small settings."""
import os.path as osp
import uuid

from mmengine.config import Config

from mmdfkd.apis import build_runner, load_config

from .conftest import config_path, small_eval_options


def datafree_cfg(config: str, work_dir: str, teacher_ckpt: str, max_iters: int = 2,
                 **options) -> Config:
    opts = dict(small_eval_options(), teacher_ckpt=teacher_ckpt)
    opts.update({'train_cfg.max_iters': max_iters, 'train_cfg.val_interval': max_iters,
                 'default_hooks.logger.interval': 1,
                 'default_hooks.checkpoint.interval': max_iters,
                 'model.synthesizer.batch_size': 32, 'model.student_batch_size': 32,
                 'model.student_steps': 1})
    opts.update(options)
    cfg = load_config(config_path(*config.split('/')), cfg_options=opts, work_dir=work_dir)
    # mmengine keys its global visualizer by experiment name (second resolution); runners built
    # within the same second would share one, so every test run gets its own name.
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:12]}'
    return cfg


def one_iteration_options(config: str, teacher_ckpt: str) -> dict:
    """Overrides for one tiny synthesis + student iteration of a config with no evaluation
    (for settings without their dataset on this machine, e.g. CIFAR). DIP-KD runs its four
    phases one iteration each on 8 priors."""
    opts = {'teacher_ckpt': teacher_ckpt, 'train_cfg.val_interval': 1,
            'default_hooks.checkpoint.interval': 1, 'custom_hooks': [],
            'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None,
            'test_dataloader': None, 'test_cfg': None, 'test_evaluator': None}
    if 'dipkd' in config:
        opts.update({'train_cfg.max_iters': 4, 'model.phase_iters.synthesis': 1,
                     'model.phase_iters.primer': 1, 'model.phase_iters.contrast': 1,
                     'model.phase_iters.distill': 1, 'model.synthesizer.num_images': 8,
                     'model.synthesizer.batch_size': 8, 'model.batch_size': 4,
                     'model.teacher.query_budget': 8,
                     'model.synthesizer.pool.max_images': 8})
        return opts
    opts.update({'train_cfg.max_iters': 1, 'model.synthesizer.batch_size': 4,
                 'model.student_steps': 1, 'model.student_batch_size': 4,
                 'model.synthesizer_steps': 1})
    if uses_inversion_pool(config):  # model inversion: a few inner steps, no warm-up
        opts.update({'model.synthesizer.iterations': 1, 'model.warmup_iters': 0})
    if 'cmi' in config:
        opts['model.synthesizer.contrastive.bank_size'] = 16
    return opts


def uses_inversion_pool(config: str) -> bool:
    """Whether a config is one of the model-inversion methods that fill a data pool."""
    return osp.basename(config).split('_')[0] in ('deepinversion', 'cmi', 'fast')


def run_datafree(*args, **kwargs):
    cfg = datafree_cfg(*args, **kwargs)
    runner = build_runner(cfg)
    runner.train()
    return runner


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()
