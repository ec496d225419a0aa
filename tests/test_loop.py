import glob
import os.path as osp

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


def test_auto_scale_lr_scales_by_the_student_batch(teacher_ckpt, tmp_path):
    """`--auto-scale-lr` used to do nothing (load_config wrote `enable` into a copy made by
    Config.setdefault), and with `enable` set a data-free run stopped on mmengine's
    `'NoneType' object is not subscriptable` (no training dataloader to take a batch size
    from). The student batch size now stands in; without a base size the error names it."""
    from mmengine.config import Config

    from mmdfkd.apis import load_config
    from .conftest import config_path
    dfad = config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')
    assert load_config(dfad, auto_scale_lr=True).auto_scale_lr.enable is True

    cfg = datafree_cfg('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path / 'a'),
                       teacher_ckpt, max_iters=1)
    cfg.auto_scale_lr = dict(enable=True)
    with pytest.raises(ValueError, match='needs auto_scale_lr.base_batch_size'):
        build_runner(cfg).train()

    # The test's student batch is 32: a base of 16 doubles every learning rate.
    cfg = datafree_cfg('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path / 'b'),
                       teacher_ckpt, max_iters=1)
    cfg.auto_scale_lr = dict(enable=True, base_batch_size=16)
    configured = Config.fromfile(dfad).optim_wrapper
    runner = build_runner(cfg)
    runner.train()
    for name in ('student', 'synthesizer'):
        group = runner.optim_wrapper[name].optimizer.param_groups[0]
        assert group['initial_lr'] == pytest.approx(2 * configured[name].optimizer.lr)


def test_cpu_launcher_sets_gloo_even_without_env_cfg(tmp_path):
    """The gloo backend was written into a throw-away copy when the config had no env_cfg."""
    import torch

    from mmdfkd.apis import load_config
    path = tmp_path / 'plain.py'
    path.write_text('model = dict(type="ImageClassifier")\n')
    if torch.cuda.is_available():
        pytest.skip('the gloo default is for machines without CUDA')
    cfg = load_config(str(path), launcher='pytorch')
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'


def test_a_stop_signal_ends_the_iteration_with_a_checkpoint_and_resume_goes_on(teacher_ckpt,
                                                                                tmp_path):
    """Ctrl-C or a scheduler's SIGTERM used to lose everything since the last periodic
    checkpoint; now the iteration under way finishes, is saved (without the final
    validation) and `--resume` continues from it. The usual handler is back afterwards."""
    import os
    import signal

    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    cfg = datafree_cfg(config, str(tmp_path), teacher_ckpt, max_iters=5,
                       **{'default_hooks.checkpoint.interval': 5})
    runner = build_runner(cfg)
    model_cls = type(runner.model)

    def train_step(module_self, data, optim_wrapper):
        if data['iteration'] == 1:
            os.kill(os.getpid(), signal.SIGINT)  # arrives during the second iteration
        return model_cls.train_step(module_self, data, optim_wrapper)

    runner.model.train_step = train_step.__get__(runner.model)
    validations = []
    runner.val_loop.run = lambda: validations.append(runner.iter)
    # A suite started as a background job of a non-interactive shell inherits SIGINT ignored,
    # which the loop rightly leaves alone; the test needs Python's usual Ctrl-C handler.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        runner.train()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, inherited)
    assert runner.train_loop.stopped_by_signal == signal.SIGINT
    assert runner.iter == 2 and validations == []
    assert last_checkpoint(str(tmp_path)).endswith('iter_2.pth')

    resumed = build_runner(datafree_cfg(config, str(tmp_path), teacher_ckpt, max_iters=3,
                                        resume=True))
    resumed.train()
    assert resumed.iter == 3 and resumed.train_loop.stopped_by_signal is None
    assert last_checkpoint(str(tmp_path)).endswith('iter_3.pth')


def test_pytorch_launcher_without_torchrun_says_how_to_start(teacher_ckpt, tmp_path,
                                                             monkeypatch):
    """`tools/train.py CONFIG --launcher pytorch` run directly used to end in torch's
    'environment variable RANK expected, but not set'."""
    from mmdfkd.apis import load_config
    from .conftest import config_path
    for var in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config(config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py'),
                      cfg_options={'teacher_ckpt': teacher_ckpt}, work_dir=str(tmp_path),
                      launcher='pytorch')
    with pytest.raises(ValueError, match=r'missing RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT'
                                         r'.*tools/dist_train.sh CONFIG NUM_PROCESSES'):
        build_runner(cfg)


def test_stop_signals_leave_an_ignored_signal_ignored():
    """A background job started with SIGINT ignored must not start reacting to it."""
    import signal

    from mmdfkd.engine.runner.stop_signals import StopSignals
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is not stop._handle
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_non_finite_loss_stops_before_its_weights_are_saved(teacher_ckpt, tmp_path):
    """A diverged learning rate turned the student's weights into NaN and the run went on,
    saving NaN checkpoints over the good ones (max_keep_ckpts deletes the old ones) and
    validating at 10 %. Now the iteration whose loss is not finite raises, naming the term,
    before its hooks run: the latest checkpoint on disk is the last good one."""
    import torch

    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    cfg = datafree_cfg(config, str(tmp_path), teacher_ckpt, max_iters=6,
                       **{'default_hooks.checkpoint.interval': 2})
    runner = build_runner(cfg)
    model_cls = type(runner.model)

    def train_step(module_self, data, optim_wrapper):
        if data['iteration'] == 2:  # the third iteration's student update diverges
            optim_wrapper['student'].optimizer.param_groups[0]['lr'] = 1e30
        return model_cls.train_step(module_self, data, optim_wrapper)

    runner.model.train_step = train_step.__get__(runner.model)
    with pytest.raises(FloatingPointError, match=r'iteration 4 left NaN or infinite values in '
                                                 r'.*student\.loss_kd=nan.*optimizer\.lr'):
        runner.train()
    assert last_checkpoint(str(tmp_path)).endswith('iter_2.pth')
    saved = torch.load(last_checkpoint(str(tmp_path)), weights_only=False)
    assert all(torch.isfinite(v).all() for k, v in saved['state_dict'].items()
               if k.startswith('student.') and v.is_floating_point())
    assert not osp.exists(tmp_path / 'iter_4.pth')


def test_weights_spoilt_by_the_last_update_are_not_saved(teacher_ckpt, tmp_path):
    """The update that spoils the weights follows its iteration's finite loss, so a check of
    the losses alone comes one iteration late: the checkpoint due at that iteration would
    hold NaN weights, and with max_keep_ckpts=1 mmengine deletes the good one before it
    saves. The weights are checked too, before the iteration's hooks."""
    import torch

    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    cfg = datafree_cfg(config, str(tmp_path), teacher_ckpt, max_iters=6,
                       **{'default_hooks.checkpoint.interval': 1,
                          'default_hooks.checkpoint.max_keep_ckpts': 1})
    runner = build_runner(cfg)
    model_cls = type(runner.model)

    def train_step(module_self, data, optim_wrapper):
        if data['iteration'] == 2:  # this update makes the weights infinite at once
            optim_wrapper['student'].optimizer.param_groups[0]['lr'] = float('inf')
        return model_cls.train_step(module_self, data, optim_wrapper)

    runner.model.train_step = train_step.__get__(runner.model)
    with pytest.raises(FloatingPointError, match=r'iteration 3 left NaN or infinite values in '
                                                 r'student\.backbone\.conv1\.0\.weight'):
        runner.train()
    assert last_checkpoint(str(tmp_path)).endswith('iter_2.pth')
    assert osp.isfile(tmp_path / 'iter_2.pth') and not osp.exists(tmp_path / 'iter_3.pth')
    saved = torch.load(tmp_path / 'iter_2.pth', weights_only=False)
    assert all(torch.isfinite(v).all() for v in saved['state_dict'].values()
               if isinstance(v, torch.Tensor) and v.is_floating_point())


@needs_fmnist
def test_a_student_idle_during_warmup_gets_no_scheduler_order_warning(teacher_ckpt, tmp_path):
    """During `warmup_iters` the student's scheduler steps while its optimizer has not: torch's
    "Detected call of `scheduler.step()` before `optimizer.step()` ... skipping the first
    value" was printed by every Fast-DFKD / DiffDFKD / DIP-KD run, though no value is skipped.
    Other warnings still show, and the filter does not outlive the iteration."""
    import warnings
    filters_before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        run_datafree('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path), teacher_ckpt,
                     max_iters=2, **{'model.warmup_iters': 1})
        warnings.warn('a warning of the caller', UserWarning, stacklevel=1)
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if 'before `optimizer.step()`' in m], messages
    assert 'a warning of the caller' in messages
    assert list(warnings.filters) == filters_before


def test_a_run_shorter_than_its_schedule_is_warned_with_the_key_to_set(teacher_ckpt,
                                                                        tmp_path):
    """`--cfg-options train_cfg.max_iters=N` keeps the file's T_max (700 in the DFAD recipe):
    the run ended with its learning rates barely lowered and nothing in the log said so."""
    import glob

    def log_of(work_dir, **options):
        run_datafree('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(work_dir), teacher_ckpt,
                     max_iters=2, **options)
        return open(glob.glob(str(work_dir / '*' / '*.log'))[0]).read()

    log = log_of(tmp_path / 'short')
    assert ('param_scheduler.student anneals over T_max=700 iterations from iteration 0, '
            'but the run stops at iteration 2 (train_cfg.max_iters=2), 0% of the way: its '
            'value ends 100% of its range above its minimum. Set '
            'param_scheduler.student.T_max=2') in log
    assert 'param_scheduler.synthesizer anneals over T_max=700' in log
    fitted = log_of(tmp_path / 'fitted', **{'param_scheduler.student.T_max': 2,
                                            'param_scheduler.synthesizer.T_max': 2})
    assert 'anneals over' not in fitted
