"""A resumed data-free run draws what an uninterrupted one would (RandomStateHook)."""
import random

import numpy as np
import pytest
import torch

from mmdfkd.apis import build_runner
from mmdfkd.engine.hooks import RandomStateHook
from mmdfkd.utils import capture_random_state, restore_random_state

from .conftest import needs_fmnist
from .runner_utils import datafree_cfg, last_checkpoint

POOL_CONFIG = 'deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py'


def test_capture_and_restore_repeat_every_source():
    state = capture_random_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_random_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1]
    torch.testing.assert_close(first[2], again[2], rtol=0, atol=0)


class _Crash(Exception):
    """Stands in for a killed process."""


def _train(config: str, work: str, teacher_ckpt: str, resume: bool, opts: dict,
           crash_at: int | None = None) -> dict:
    """Train 4 iterations (checkpoints every 2); ``crash_at`` raises inside that
    iteration's train step, as a killed process would stop."""
    cfg = datafree_cfg(config, work, teacher_ckpt, max_iters=4, resume=resume,
                       **{'default_hooks.checkpoint.interval': 2, **opts})
    runner = build_runner(cfg)
    assert sum(isinstance(h, RandomStateHook) for h in runner.hooks) == 1
    if crash_at is not None:
        def crash(module_self, data, optim_wrapper, _orig=type(runner.model).train_step):
            if runner.iter == crash_at:
                raise _Crash
            return _orig(module_self, data, optim_wrapper)
        runner.model.train_step = crash.__get__(runner.model)
        with pytest.raises(_Crash):
            runner.train()
        return {}
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()
            if isinstance(v, torch.Tensor) and k.startswith(('student.', 'synthesizer.'))}


@needs_fmnist
@pytest.mark.parametrize('config, opts', [
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', {}),
    # gradient accumulation: each iteration's student steps are whole groups
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py',
     {'model.student_steps': 4, 'optim_wrapper.student.accumulative_counts': 2}),
    # a pool method: a resumed run must not re-synthesise its first batches
    (POOL_CONFIG, {'model.synthesizer.iterations': 2, 'model.warmup_iters': 0,
                   'model.student_steps': 2}),
])
def test_resumed_run_equals_uninterrupted_run(config, opts, teacher_ckpt, tmp_path):
    # Validate every iteration in the uninterrupted run and only at the end in the other:
    # validation must not move the random streams either.
    straight = _train(config, str(tmp_path / 'straight'), teacher_ckpt, False,
                      dict(opts, **{'train_cfg.val_interval': 1}))
    work = str(tmp_path / 'split')
    _train(config, work, teacher_ckpt, False, opts, crash_at=2)
    saved = torch.load(last_checkpoint(work), weights_only=False)
    assert saved['meta']['iter'] == 2 and len(saved['meta']['random_state']) == 1
    resumed = _train(config, work, teacher_ckpt, True, opts)
    assert straight.keys() == resumed.keys() and straight
    for key, value in straight.items():
        torch.testing.assert_close(resumed[key], value, rtol=0, atol=0, msg=key)
    # The pool's images are files, not weights: the same batches, none made twice.
    pools = [sorted((tmp_path / run / 'synthetic_pool').glob('*.pt'))
             for run in ('straight', 'split')]
    assert [p.name for p in pools[0]] == [p.name for p in pools[1]]
    for a, b in zip(*pools):
        torch.testing.assert_close(torch.load(b)['images'], torch.load(a)['images'],
                                   rtol=0, atol=0)
    if pools[0]:
        firsts = [torch.load(p)['images'][0] for p in pools[1]]
        assert not any(torch.equal(firsts[0], other) for other in firsts[1:])


def _rng_at_first_step(cfg) -> torch.Tensor:
    runner = build_runner(cfg)
    seen = []

    def spy(module_self, data, optim_wrapper, _orig=type(runner.model).train_step):
        if not seen:
            seen.append(torch.get_rng_state())
        return _orig(module_self, data, optim_wrapper)

    runner.model.train_step = spy.__get__(runner.model)
    runner.train()
    return seen[0]


@needs_fmnist
def test_load_from_keeps_the_seed_streams(teacher_ckpt, tmp_path):
    """Only a resume continues the streams; loading weights (``load_from``) starts a new
    run whose first draws are the seed's."""
    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    work = str(tmp_path / 'first')
    _train(config, work, teacher_ckpt, False, {})
    saved = torch.load(last_checkpoint(work), weights_only=False)['meta']['random_state'][0]
    fresh = _rng_at_first_step(datafree_cfg(config, str(tmp_path / 'fresh'), teacher_ckpt,
                                            max_iters=1))
    loaded = _rng_at_first_step(datafree_cfg(config, str(tmp_path / 'loaded'), teacher_ckpt,
                                             max_iters=1, load_from=last_checkpoint(work)))
    assert torch.equal(loaded, fresh)
    assert not torch.equal(loaded, saved['torch'])


@needs_fmnist
def test_listing_the_hook_in_the_config_adds_no_second_one(teacher_ckpt, tmp_path):
    cfg = datafree_cfg('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path), teacher_ckpt,
                       custom_hooks=[dict(type='RandomStateHook')])
    runner = build_runner(cfg)
    assert sum(isinstance(h, RandomStateHook) for h in runner.hooks) == 1


@needs_fmnist
@pytest.mark.parametrize('config', ['dfad/dfad_lenet5bn_lenet5half_fmnist.py', POOL_CONFIG])
def test_the_visualization_hook_does_not_change_the_run(config, teacher_ckpt, tmp_path):
    """Drawing the per-class grid every iteration leaves the trained student as without it."""
    opts = {'model.synthesizer.iterations': 2, 'model.warmup_iters': 0} if 'deepinv' in config \
        else {}
    runs = []
    for name, hooks in (('plain', []), ('drawn', [dict(type='SyntheticVisualizationHook',
                                                       interval=1, num_samples=16)])):
        cfg = datafree_cfg(config, str(tmp_path / name), teacher_ckpt, max_iters=3,
                           custom_hooks=hooks, **opts)
        runner = build_runner(cfg)
        runner.train()
        runs.append({k: v.clone() for k, v in runner.model.student.state_dict().items()})
    for key, value in runs[0].items():
        torch.testing.assert_close(runs[1][key], value, rtol=0, atol=0, msg=key)
