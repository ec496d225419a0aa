"""The time budget is counted across resumes, and BudgetCosineAnnealingLR anneals to it."""
import glob
import json
import math
import os.path as osp
import uuid

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.optim.scheduler import CosineAnnealingLR

from mmdfkd.apis import build_runner
from mmdfkd.engine import BUDGET_FRACTION_KEY, TRAIN_ELAPSED_KEY, BudgetCosineAnnealingLR

from .conftest import needs_fmnist
from .runner_utils import datafree_cfg, last_checkpoint, run_datafree


def _sgd(lr: float = 0.1) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def _fresh_hub() -> MessageHub:
    # get_instance makes it the current instance, which the scheduler reads.
    return MessageHub.get_instance(f'budget_test_{uuid.uuid4().hex[:8]}')


def _lrs(scheduler, optimizer, steps: int, hub=None, fractions=None) -> list[float]:
    out = []
    for i in range(steps):
        optimizer.step()
        if fractions is not None:
            hub.update_info(BUDGET_FRACTION_KEY, fractions[i])
        scheduler.step()
        out.append(optimizer.param_groups[0]['lr'])
    return out


def test_without_a_budget_it_is_mmengines_cosine():
    _fresh_hub()
    opt_a, opt_b = _sgd(), _sgd()
    ours = BudgetCosineAnnealingLR(opt_a, T_max=10, eta_min=0.01, by_epoch=False)
    ref = CosineAnnealingLR(opt_b, T_max=10, eta_min=0.01, by_epoch=False)
    assert _lrs(ours, opt_a, 10) == pytest.approx(_lrs(ref, opt_b, 10), rel=1e-9)
    assert opt_a.param_groups[0]['lr'] == pytest.approx(0.01)


def test_the_spent_budget_share_drives_the_value_when_it_runs_ahead():
    hub = _fresh_hub()
    opt = _sgd(0.1)
    sched = BudgetCosineAnnealingLR(opt, T_max=100, eta_min_ratio=0.1, by_epoch=False)
    # 4 steps of 100 (progress 0.04), but half, then 90 % of the time budget spent.
    lrs = _lrs(sched, opt, 4, hub, fractions=[0.0, 0.0, 0.5, 0.9])
    assert lrs[1] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 0.02)) / 2)
    assert lrs[2] == pytest.approx(0.01 + 0.09 * 0.5)  # cos(pi / 2) = 0
    assert lrs[3] == pytest.approx(0.01 + 0.09 * (1 + math.cos(math.pi * 0.9)) / 2)
    # the budget is spent: annealed to eta_min, and it stays there
    assert _lrs(sched, opt, 2, hub, fractions=[1.0, 1.7]) == pytest.approx([0.01, 0.01])


def test_pure_time_schedule_without_t_max():
    hub = _fresh_hub()
    opt = _sgd(0.2)
    sched = BudgetCosineAnnealingLR(opt, by_epoch=False)
    assert _lrs(sched, opt, 3, hub, fractions=[0.0, 0.25, 1.0]) == pytest.approx(
        [0.2, 0.2 * (1 + math.cos(math.pi / 4)) / 2, 0.0])


@needs_fmnist
def test_budget_is_counted_across_resume(teacher_ckpt, tmp_path):
    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    work = str(tmp_path / 'run')
    timed = [dict(type='TimedValidationHook', marks_s=[1e-3])]
    run_datafree(config, work, teacher_ckpt, max_iters=2,
                 **{'train_cfg.time_budget_s': 1e6, 'custom_hooks': timed})
    saved = torch.load(last_checkpoint(work), weights_only=False)
    spent = saved['message_hub']['runtime_info'][TRAIN_ELAPSED_KEY]
    assert spent > 0
    assert saved['message_hub']['runtime_info'][BUDGET_FRACTION_KEY] == pytest.approx(
        spent / 1e6)

    # A budget the checkpoint has already spent: the resumed run trains nothing.
    spent_up = datafree_cfg(config, work, teacher_ckpt, max_iters=4, resume=True,
                            **{'train_cfg.time_budget_s': spent})
    runner = build_runner(spent_up)
    runner.train()
    assert runner.iter == 2
    assert last_checkpoint(work).endswith('iter_2.pth')

    # With budget left, the clock continues from the checkpoint's seconds, not from zero.
    more = datafree_cfg(config, work, teacher_ckpt, max_iters=4, resume=True,
                        **{'train_cfg.time_budget_s': 1e6, 'train_cfg.val_interval': 4,
                           'custom_hooks': timed})
    runner = build_runner(more)
    runner.train()
    assert runner.iter == 4
    assert runner.message_hub.get_info(TRAIN_ELAPSED_KEY) > spent
    # The 1 ms mark was measured by the first run only: the resumed clock is past it.
    logs = {path: [json.loads(line) for line in open(path)]
            for path in glob.glob(osp.join(work, '*', 'vis_data', 'scalars.json'))}
    at_mark = [sum('accuracy/top1@0.001s' in row for row in logs[path])
               for path in sorted(logs)]  # timestamped run dirs: the first run first
    assert at_mark[0] == 1 and sum(at_mark) == 1, at_mark


@needs_fmnist
def test_budget_fitted_schedule_ends_annealed_when_the_budget_stops_the_run(teacher_ckpt,
                                                                          tmp_path):
    # 1,000 scheduled iterations, but a budget that ends the run after the first: a plain
    # cosine would stop at its base lr; the budget-fitted one has annealed to eta_min.
    runner = run_datafree(
        'dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path), teacher_ckpt, max_iters=1000,
        **{'train_cfg.time_budget_s': 0.001, 'default_hooks.checkpoint.interval': 1000,
           'param_scheduler.student': dict(type='BudgetCosineAnnealingLR', T_max=1000,
                                           eta_min=1e-4, by_epoch=False),
           # the control: mmengine's plain cosine on the generator
           'param_scheduler.synthesizer': dict(type='CosineAnnealingLR', T_max=1000,
                                               eta_min=1e-4, by_epoch=False)})
    assert runner.iter == 1
    student_lr = runner.optim_wrapper['student'].optimizer.param_groups[0]['lr']
    assert student_lr == pytest.approx(1e-4)
    synth_lr = runner.optim_wrapper['synthesizer'].optimizer.param_groups[0]['lr']
    assert synth_lr > 1e-4  # its plain cosine was left as it was, one step into 1,000


def _cosine_schedulers(param_scheduler) -> list[dict]:
    """Every cosine entry of a config's ``param_scheduler`` (dict per optimizer, or lists)."""
    entries = []
    for value in (param_scheduler.values() if isinstance(param_scheduler, dict) and
                  'type' not in param_scheduler else [param_scheduler]):
        entries.extend(value if isinstance(value, (list, tuple)) else [value])
    return [e for e in entries if 'Cosine' in e['type']]


def test_time_budgeted_suite_rows_anneal_to_the_budget():
    """The fmnist suite caps every white-box row with ``--budget-s``: a plain iteration cosine
    would be cut before it anneals on a slower CPU, so each row's cosine must be the
    budget-aware one (a config that forgets it fails here, not in a 15-minute benchmark)."""
    from mmengine.config import Config

    from mmdfkd.benchmark import SUITES
    root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    checked = 0
    for row in SUITES['fmnist'].rows:
        if row.access != 'white-box':
            continue
        cfg = Config.fromfile(osp.join(root, row.config))
        cosines = _cosine_schedulers(cfg.param_scheduler)
        assert cosines, f'{row.method}: no cosine schedule found in {row.config}'
        for entry in cosines:
            assert entry['type'] == 'BudgetCosineAnnealingLR', (
                f"{row.method} ({row.config}) anneals with {entry['type']}; use "
                "type='BudgetCosineAnnealingLR' so the time budget ends it annealed")
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize('t_max', [0, -3, 2.5])
def test_a_t_max_below_one_is_refused(t_max):
    """mmengine read T_max=0 as unset; a negative one held the base value all run."""
    with pytest.raises(ValueError, match=r'T_max must be an integer >= 1 .*param_scheduler'):
        BudgetCosineAnnealingLR(_sgd(), T_max=t_max, by_epoch=False)
