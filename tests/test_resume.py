import copy
import os
import os.path as osp

import pytest
import torch

from mmdfkd.apis import build_runner

from .conftest import needs_fmnist
from .runner_utils import datafree_cfg, last_checkpoint


@needs_fmnist
@pytest.mark.parametrize('CONFIG', ['dfad/dfad_lenet5bn_lenet5half_fmnist.py',
                                    'cpsc_dfkd/cpsc_dfkd_lenet5bn_lenet5half_fmnist.py'])
def test_resume_continues_at_same_iteration_with_same_state(CONFIG, teacher_ckpt, tmp_path):
    work = str(tmp_path / 'run')
    # First run: 2 iterations, checkpoint at iteration 2 (as if it crashed right after).
    runner = build_runner(datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=2))
    runner.train()
    ckpt_path = last_checkpoint(work)
    saved = torch.load(ckpt_path, weights_only=False)

    # Resume with a longer schedule (`--resume` = auto: latest checkpoint of the work dir).
    cfg = datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=4, resume=True)
    cfg['train_cfg']['val_interval'] = 4
    resumed = build_runner(cfg)
    seen = {}

    def spy(module_self, data, optim_wrapper, _orig=type(resumed.model).train_step):
        if not seen:
            seen['iter'] = resumed.iter
            seen['queries'] = int(module_self.teacher_queries)
            seen['student'] = {k: v.clone() for k, v in module_self.student.state_dict().items()}
            seen['optim'] = copy.deepcopy(optim_wrapper.state_dict())
        return _orig(module_self, data, optim_wrapper)

    resumed.model.train_step = spy.__get__(resumed.model)
    resumed.train()

    assert seen['iter'] == 2, 'resume must continue at the saved iteration'
    assert seen['queries'] == int(saved['state_dict']['teacher_queries'])
    for k, v in seen['student'].items():
        torch.testing.assert_close(v, saved['state_dict'][f'student.{k}'])
    for name in ('student', 'synthesizer'):
        saved_state = saved['optimizer'][name]['state']
        resumed_state = seen['optim'][name]['state']
        assert saved_state.keys() == resumed_state.keys() and saved_state
        for idx in saved_state:
            for key, value in saved_state[idx].items():
                torch.testing.assert_close(resumed_state[idx][key], value)
    assert resumed.iter == 4
    final = torch.load(last_checkpoint(work), weights_only=False)
    assert final['meta']['iter'] == 4
    assert int(final['state_dict']['teacher_queries']) > seen['queries']


def test_local_checkpoint_loader_accepts_mmengine_objects(tmp_path):
    """torch >= 2.6 refuses mmengine's HistoryBuffer with weights_only=True; ours loads it."""
    import pickle

    import pytest
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import CheckpointLoader
    path = str(tmp_path / 'c.pth')
    buffer = HistoryBuffer()
    buffer.update(1.0)
    buffer.update(2.0)
    torch.save({'message_hub': {'log': buffer}}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)  # the default the stock mmengine loader relies on
    loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu')
    assert loaded['message_hub']['log'].mean() == 1.5


@pytest.mark.parametrize('kept_bytes', [0, 300])
def test_a_cut_checkpoint_is_named_with_the_complete_ones_beside_it(tmp_path, kept_bytes):
    """--resume PATH on a checkpoint cut short (saved before checkpoints were written whole,
    or copied badly) failed with torch's "Ran out of input" (an empty file) or a miniz error,
    neither naming the file or what to resume from instead."""
    from mmengine.runner.checkpoint import CheckpointLoader
    for it in (2, 10):
        torch.save({'meta': {'iter': it}}, tmp_path / f'iter_{it}.pth')
    whole = (tmp_path / 'iter_10.pth').read_bytes()
    (tmp_path / 'iter_12.pth').write_bytes(whole[:kept_bytes])
    with pytest.raises(ValueError, match=r'iter_12\.pth is not a complete checkpoint .*cut short'
                       r'.*next to it: iter_2\.pth, iter_10\.pth; give the latest complete'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'iter_12.pth'), map_location='cpu')


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    """A config or log given where a checkpoint goes (teacher_ckpt=..., --resume) was called
    'cut short'; it is not a checkpoint at all, which its first bytes show."""
    from mmengine.runner.checkpoint import CheckpointLoader
    (tmp_path / 'config.py').write_text('# a config, not weights\n')
    with pytest.raises(ValueError, match=r"config\.py is not a checkpoint file at all: it "
                                         r"starts with b'# '"):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'config.py'), map_location='cpu')


def test_a_missing_checkpoint_or_a_work_dir_names_the_file_to_give(tmp_path):
    """--resume PATH, tools/test.py, export and synthesis said only mmengine's "PATH can not
    be found" for a mistyped checkpoint or a work dir given as one."""
    from mmengine.runner.checkpoint import CheckpointLoader
    for it in (2, 10):
        torch.save({'meta': {'iter': it}}, tmp_path / f'iter_{it}.pth')
    with pytest.raises(FileNotFoundError, match=r'iter_12\.pth does not exist; the checkpoints '
                                                r'in .*: iter_2\.pth, iter_10\.pth\.$'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'iter_12.pth'), map_location='cpu')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_10.pth'))
    with pytest.raises(FileNotFoundError, match=r'is a folder, not a checkpoint file: give one '
                                                r'of its checkpoints, e.g. its latest, '
                                                r'.*iter_10\.pth \(for --resume, `--resume` '
                                                r'alone with `--work-dir'):
        CheckpointLoader.load_checkpoint(str(tmp_path), map_location='cpu')
    with pytest.raises(FileNotFoundError, match=r'does not exist \(nor does its folder '):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'gone' / 'iter_1.pth'))


@needs_fmnist
def test_resume_refuses_a_work_dir_of_another_config(teacher_ckpt, tmp_path):
    """Resuming another config's run (same --work-dir, or --resume PATH) used to load the
    model non-strictly and then stop on mmengine's raw `KeyError: 'synthesizer'` of the
    scheduler state; it is now refused before anything loads, naming the run's config."""
    import glob
    work = str(tmp_path / 'run')
    build_runner(datafree_cfg('dfad/dfad_lenet5bn_lenet5half_fmnist.py', work, teacher_ckpt,
                              max_iters=1)).train()
    dumped = glob.glob(f'{work}/*.py')[0]
    other = build_runner(datafree_cfg('deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py',
                                      work, teacher_ckpt, max_iters=2, resume=True))
    with pytest.raises(ValueError, match=r"cannot resume from .*iter_1.pth: it does not fit "
                                         r"this config's model \(not in the model "
                                         r'synthesizer.generator.*Resume a run with '
                                         rf'the config the run used \({dumped}\)'):
        other.train()


@needs_fmnist
def test_a_run_resumed_with_another_learning_rate_uses_it(teacher_ckpt, tmp_path):
    """mmengine restores the optimizer's and the schedulers' base learning rates from the
    checkpoint, so a run resumed with a lower optim_wrapper...lr (the advice a diverged run
    stops with) kept the old one without a word. The config's rate now replaces it and the
    schedule goes on from the same point at the new level; the other optimizer is as saved."""
    import shutil
    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    first = str(tmp_path / 'first')
    build_runner(datafree_cfg(config, first, teacher_ckpt, max_iters=2)).train()
    lowered = None
    final = {}
    for name, factor in (('same', 1.0), ('lowered', 0.1)):
        work = str(tmp_path / name)
        shutil.copytree(first, work)
        cfg = datafree_cfg(config, work, teacher_ckpt, max_iters=3, resume=True,
                           **{'train_cfg.val_interval': 3})
        lowered = cfg.optim_wrapper.student.optimizer.lr * factor
        cfg.optim_wrapper.student.optimizer.lr = lowered
        runner = build_runner(cfg)
        runner.train()
        final[name] = {key: runner.optim_wrapper[key].optimizer.param_groups[0]
                       for key in ('student', 'synthesizer')}
    assert final['lowered']['student']['initial_lr'] == pytest.approx(lowered)
    assert final['lowered']['student']['lr'] == pytest.approx(
        final['same']['student']['lr'] * 0.1, rel=1e-9)
    assert final['lowered']['synthesizer']['lr'] == final['same']['synthesizer']['lr']


@needs_fmnist
def test_a_run_resumed_with_more_iterations_goes_on_with_its_schedule(teacher_ckpt, tmp_path):
    """A scheduler's `end` defaults to train_cfg.max_iters and mmengine restored it from the
    checkpoint: a run resumed with a larger max_iters kept its learning rate frozen at the
    old end. The config's schedule now goes on from the checkpoint's position."""
    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    work = str(tmp_path / 'run')
    schedule = {'param_scheduler.student.T_max': 6}
    build_runner(datafree_cfg(config, work, teacher_ckpt, max_iters=2, **schedule)).train()
    cfg = datafree_cfg(config, work, teacher_ckpt, max_iters=6, resume=True,
                       **schedule, **{'train_cfg.val_interval': 6})
    runner = build_runner(cfg)
    rates = []

    def spy(module_self, data, optim_wrapper, _orig=type(runner.model).train_step):
        rates.append(optim_wrapper['student'].optimizer.param_groups[0]['lr'])
        return _orig(module_self, data, optim_wrapper)

    runner.model.train_step = spy.__get__(runner.model)
    runner.train()
    assert len(rates) == 4
    assert all(later < earlier for earlier, later in zip(rates, rates[1:])), rates
    assert runner.param_schedulers['student'][0].end == 6


@needs_fmnist
@pytest.mark.skipif(not osp.exists('/dev/full'), reason='needs /dev/full to fill a write')
def test_a_checkpoint_the_disk_refuses_leaves_no_truncated_file_and_the_run_resumes(
        teacher_ckpt, tmp_path):
    """mmengine wrote checkpoints straight to their final names: a full disk (or a process
    killed mid-write) left a truncated iter_N.pth that --resume PATH could not load. The
    checkpoint is now written under a temporary name and renamed, and the error says what
    to do; the run resumes from the checkpoint before."""
    from mmdfkd.utils.atomic_save import WriteFailedError
    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    work = str(tmp_path / 'run')
    options = {'train_cfg.val_interval': 3, 'default_hooks.checkpoint.interval': 1}
    runner = build_runner(datafree_cfg(config, work, teacher_ckpt, max_iters=3, **options))
    os.symlink('/dev/full', osp.join(work, 'iter_2.pth.part'))  # the disk is full at iter 2
    with pytest.raises(WriteFailedError, match=r'checkpoint .*iter_2\.pth: the disk is full.*'
                       r'tools/train\.py CONFIG --resume.*last_checkpoint'):
        runner.train()
    assert sorted(f for f in os.listdir(work) if 'iter_' in f) == ['iter_1.pth']
    assert last_checkpoint(work).endswith('iter_1.pth')
    resumed = build_runner(datafree_cfg(config, work, teacher_ckpt, max_iters=3, resume=True,
                                        **options))
    resumed.train()
    assert torch.load(last_checkpoint(work), weights_only=False)['meta']['iter'] == 3
