"""Helpers to build real runners from the shipped configs with small settings."""
import os.path as osp
import uuid

from mmengine.config import Config

from mmdfkd.apis import build_runner, load_config
from mmdfkd.apis.smoke import one_iteration_options, uses_inversion_pool  # noqa: F401

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


def run_datafree(*args, **kwargs):
    cfg = datafree_cfg(*args, **kwargs)
    runner = build_runner(cfg)
    runner.train()
    return runner


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()
