import glob
import json
import os.path as osp

import pytest

from mmdfkd.apis import build_runner, load_config
from mmdfkd.engine.hooks import TimedValidationHook

from .conftest import config_path, needs_fmnist, small_eval_options
from .runner_utils import datafree_cfg


def _scalars(work_dir) -> list[dict]:
    path = glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json'))[0]
    return [json.loads(line) for line in open(path)]


def test_marks_must_be_positive():
    with pytest.raises(ValueError, match='marks_s'):
        TimedValidationHook(marks_s=[])
    with pytest.raises(ValueError, match='marks_s'):
        TimedValidationHook(marks_s=[0])


@needs_fmnist
def test_a_run_without_validation_warns_at_the_start_and_trains_on(teacher_ckpt, tmp_path):
    """--no-validate with the hook in the config trained until the first mark (3 minutes in
    the benchmark) and then failed, saving nothing after the last periodic checkpoint."""
    cfg = datafree_cfg('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path), teacher_ckpt,
                       max_iters=3, **{'custom_hooks': [
                           dict(type='TimedValidationHook', marks_s=[1e-3])]})
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # what --no-validate does
    runner = build_runner(cfg)
    runner.train()
    assert runner.iter == 3
    assert osp.isfile(tmp_path / 'iter_3.pth')
    log = open(glob.glob(osp.join(str(tmp_path), '*', '*.log'))[0]).read()
    assert 'TimedValidationHook: this run does not validate' in log
    assert not any('accuracy/top1@' in json.dumps(r) for r in _scalars(tmp_path))


@needs_fmnist
def test_data_free_run_logs_accuracy_at_the_mark(teacher_ckpt, tmp_path):
    cfg = datafree_cfg('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path), teacher_ckpt,
                       max_iters=3, **{'custom_hooks': [
                           dict(type='TimedValidationHook', marks_s=[1e-3, 2e-3])]})
    seen_modes = []
    runner = build_runner(cfg)
    orig = type(runner.model).train_step

    def spy(module_self, data, optim_wrapper):
        seen_modes.append(module_self.student.training)
        return orig(module_self, data, optim_wrapper)

    runner.model.train_step = spy.__get__(runner.model)
    runner.train()
    rows = _scalars(tmp_path)
    at_mark = [r for r in rows if 'accuracy/top1@0.001s' in r]
    # both marks passed during iteration 1: one validation, logged under the first mark
    assert len(at_mark) == 1 and at_mark[0]['step'] == 1
    assert at_mark[0]['elapsed_s@0.001s'] > 0
    assert not any('accuracy/top1@0.002s' in r for r in rows)
    assert seen_modes == [True, True, True], 'training must resume in train mode'
    assert runner.iter == 3
    # LoggerHook files each validation under the iteration count (log_metric_by_epoch=False),
    # not epoch 0: the mark's ran inside iteration 1, before mmengine counts it (runner.iter
    # 0), and the regular one at val_interval 3 under 3.
    assert [r['step'] for r in rows if 'accuracy/top1' in r] == [0, 3]
    # ValidationContextHook (datafree_runtime default): each validation record carries the
    # teacher queries spent when it ran, the count of the iteration it ran in or after
    spent = {r['step']: r['teacher_queries'] for r in rows if 'iter' in r}
    assert [r['teacher_queries'] for r in rows if 'accuracy/top1' in r] == [spent[1], spent[3]]
    assert 0 < spent[1] < spent[3]


@needs_fmnist
def test_epoch_based_run_stops_after_the_last_mark(tmp_path):
    opts = dict(small_eval_options(), **{
        'train_dataloader.dataset.indices': 256, 'train_cfg.max_epochs': 3,
        'train_cfg.val_interval': 10, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'default_hooks.timed_val.type': 'TimedValidationHook',
        'default_hooks.timed_val.marks_s': [1e-3],
        'default_hooks.timed_val.stop_after_last': True})
    cfg = load_config(config_path('baselines', 'lenet5half_fmnist_realdata.py'),
                      cfg_options=opts, work_dir=str(tmp_path))
    cfg.experiment_name = f'test_{osp.basename(str(tmp_path))}'
    runner = build_runner(cfg)
    runner.train()
    assert runner.epoch == 1, 'stop_after_last ends training at the end of the epoch'
    assert any('accuracy/top1@0.001s' in r for r in _scalars(tmp_path))
