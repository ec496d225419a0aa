import glob

import pytest

from mmdfkd.apis import build_runner

from .conftest import needs_fmnist
from .runner_utils import datafree_cfg, last_checkpoint, run_datafree


@pytest.mark.parametrize('key,value,message', [
    ('train_cfg.max_iters', 0, 'train_cfg.max_iters must be a positive integer, got 0'),
    ('train_cfg.val_interval', 0, 'train_cfg.val_interval must be a positive integer'),
    ('train_cfg.val_interval', 2.5, 'train_cfg.val_interval must be a positive integer'),
    ('train_cfg.time_budget_s', -1, 'train_cfg.time_budget_s must be a positive number'),
])
def test_loop_settings_are_refused_before_the_first_iteration(key, value, message,
                                                              teacher_ckpt, tmp_path):
    """``val_interval=0`` used to end the first iteration with ``integer modulo by zero``."""
    cfg = datafree_cfg('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path), teacher_ckpt,
                       max_iters=2, **{key: value})
    with pytest.raises(ValueError, match=message):
        build_runner(cfg).train()
    assert not glob.glob(str(tmp_path / '*.pth'))


@needs_fmnist
def test_time_budget_stops_cleanly_with_checkpoint_and_validation(teacher_ckpt, tmp_path):
    runner = run_datafree('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path),
                          teacher_ckpt, max_iters=1000,
                          **{'train_cfg.time_budget_s': 0.001,
                             'default_hooks.checkpoint.interval': 1000})
    assert runner.iter == 1  # stopped after the first iteration, not 1000
    assert last_checkpoint(str(tmp_path)).endswith('iter_1.pth')
    # the final validation ran on the early-stopped model
    assert 0 <= runner.message_hub.get_scalar('val/accuracy/top1').current() <= 100
