from .conftest import needs_fmnist
from .runner_utils import last_checkpoint, run_datafree


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
