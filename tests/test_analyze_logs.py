"""tools/analysis_tools/analyze_logs.py and the ValidationContextHook that feeds it."""
import csv
import json
import os.path as osp
import subprocess
import sys
from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub

from mmdfkd.engine.hooks import ValidationContextHook

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'analyze_logs.py')


def _analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def _write_log(path, records: list[dict]) -> str:
    with open(path, 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in records)
    return str(path)


# What LoggerHook writes for a data-free run: a training record (with `iter`) every logger
# interval, a validation record (no `iter`) every val_interval, here at steps 4 and 8.
RUN = [
    {'student.lr': 0.01, 'teacher_queries': 100.0, 'time': 9.0, 'iter': 2, 'step': 2},
    {'student.lr': 0.01, 'teacher_queries': 200.0, 'time': 1.0, 'iter': 4, 'step': 4},
    {'accuracy/top1': 40.0, 'teacher_queries': 200.0, 'time': 0.3, 'step': 4},
    {'student.lr': 0.01, 'teacher_queries': 300.0, 'time': 2.0, 'iter': 6, 'step': 6},
    {'student.lr': 0.01, 'teacher_queries': 400.0, 'time': 3.0, 'iter': 8, 'step': 8},
    {'accuracy/top1': 55.5, 'teacher_queries': 400.0, 'time': 0.3, 'step': 8},
]


def test_hook_copies_the_latest_training_count_into_the_record():
    hub = MessageHub.get_instance('test_validation_context_hook')
    runner = SimpleNamespace(message_hub=hub)
    hook = ValidationContextHook(keys=['teacher_queries', 'not_logged'])
    hook.after_val_epoch(runner, metrics={})
    assert 'val/teacher_queries' not in hub.log_scalars, 'nothing logged yet: nothing copied'
    for count in (64, 128, 192):
        hub.update_scalar('train/teacher_queries', count)
    hook.after_val_epoch(runner, metrics={})
    hook.after_test_epoch(runner, metrics={})
    # the value at the moment of validation, not the buffer's window mean (128)
    assert hub.get_scalar('val/teacher_queries').current() == 192
    assert hub.get_scalar('test/teacher_queries').current() == 192
    assert 'val/not_logged' not in hub.log_scalars
    for bad in ('teacher_queries', [], [''], None):
        with pytest.raises(ValueError, match='keys'):
            ValidationContextHook(keys=bad)


def test_plot_curve_against_teacher_queries(tmp_path):
    log = _write_log(tmp_path / 'scalars.json', RUN)
    out, table = tmp_path / 'curve.png', tmp_path / 'curve.csv'
    result = _analyze('plot_curve', log, '--x', 'teacher_queries', '--out', str(out),
                      '--csv', str(table))
    assert result.returncode == 0, result.stderr
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert [(float(r['teacher_queries']), float(r['value']), r['phase']) for r in rows] == \
        [(200.0, 40.0, 'val'), (400.0, 55.5, 'val')]
    assert out.stat().st_size > 0
    # a training scalar is read from the training records only, by step
    result = _analyze('plot_curve', log, '--keys', 'student.lr', '--csv', str(table))
    with open(table) as f:
        assert [float(r['step']) for r in csv.DictReader(f)] == [2, 4, 6, 8]


def test_plot_curve_finds_the_latest_run_of_a_work_dir(tmp_path):
    for stamp, acc in (('20260101_000000', 10.0), ('20260102_000000', 70.0)):
        (tmp_path / stamp / 'vis_data').mkdir(parents=True)
        _write_log(tmp_path / stamp / 'vis_data' / 'scalars.json',
                   [{'accuracy/top1': acc, 'step': 4}])
    result = _analyze('plot_curve', str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert '20260102_000000' in result.stdout and ' 70' in result.stdout
    assert '20260101_000000' not in result.stdout


def _write_run(work_dir, stamp: str, records: list[dict], resumed: str | None = None) -> None:
    """A run's folder as mmengine writes it: vis_data/scalars.json and the text log."""
    (work_dir / stamp / 'vis_data').mkdir(parents=True)
    _write_log(work_dir / stamp / 'vis_data' / 'scalars.json', records)
    (work_dir / stamp / f'{stamp}.log').write_text(
        '12/07 12:26:19 - mmengine - INFO - Load checkpoint from x\n' +
        (f'12/07 12:26:19 - mmengine - INFO - resumed epoch: {resumed}\n' if resumed else ''))


def test_a_resumed_run_reads_as_one_curve(tmp_path):
    """--resume starts a new timestamped folder: only the resumed part used to be read, so
    the curve of a run that crashed lost everything before the crash."""
    # Crashed after iteration 8, resumed from its iteration-4 checkpoint: the first run's
    # records after iteration 4 were redone and are superseded.
    _write_run(tmp_path, '20260101_000000', RUN)
    _write_run(tmp_path, '20260101_010000', [
        {'student.lr': 0.01, 'teacher_queries': 300.0, 'time': 7.0, 'iter': 6, 'step': 6},
        {'student.lr': 0.01, 'teacher_queries': 400.0, 'time': 4.0, 'iter': 8, 'step': 8},
        {'accuracy/top1': 60.0, 'teacher_queries': 400.0, 'time': 0.3, 'step': 8},
        {'student.lr': 0.01, 'teacher_queries': 500.0, 'time': 5.0, 'iter': 10, 'step': 10}],
        resumed='0, iter: 4')
    result = _analyze('plot_curve', str(tmp_path), '--x', 'teacher_queries')
    assert result.returncode == 0, result.stderr
    points = [line.split()[-2:] for line in result.stdout.splitlines()]
    assert points == [['teacher_queries=200', '40'], ['teacher_queries=400', '60']]
    assert '(2 runs, resumed)' in result.stdout
    # Start-up is left out of each part: 9 s (run 1) and 7 s (run 2); 1, 4 and 5 s remain.
    result = _analyze('cal_train_time', str(tmp_path))
    assert 'average iter time: 3.3333 s/iter' in result.stdout, result.stdout
    # An epoch-based run (a teacher) files validations by epoch.
    teacher = tmp_path / 'teacher'
    _write_run(teacher, '20260101_000000', [
        {'lr': 0.1, 'time': 1.0, 'epoch': 1, 'iter': 50, 'step': 50},
        {'accuracy/top1': 80.0, 'step': 1},
        {'lr': 0.1, 'time': 1.0, 'epoch': 2, 'iter': 100, 'step': 100},
        {'accuracy/top1': 85.0, 'step': 2}, {'accuracy/top1': 1.0, 'step': 3}])
    _write_run(teacher, '20260101_010000', [
        {'lr': 0.1, 'time': 1.0, 'epoch': 3, 'iter': 150, 'step': 150},
        {'accuracy/top1': 88.0, 'step': 3}], resumed='2, iter: 100')
    result = _analyze('plot_curve', str(teacher))
    assert [line.split()[-2:] for line in result.stdout.splitlines()] == [
        ['step=1', '80'], ['step=2', '85'], ['step=3', '88']]


def test_bad_keys_and_old_logs_are_refused_by_name(tmp_path):
    log = _write_log(tmp_path / 'scalars.json', RUN)
    result = _analyze('plot_curve', log, '--keys', 'accuracy/top5')
    assert result.returncode != 0
    assert "no 'accuracy/top5'" in result.stderr and 'accuracy/top1' in result.stderr
    # a run logged before ValidationContextHook: validation records without the count
    old = _write_log(tmp_path / 'old.json', [{k: v for k, v in r.items()
                                             if not ('iter' not in r and k == 'teacher_queries')}
                                            for r in RUN])
    result = _analyze('plot_curve', old, '--x', 'teacher_queries')
    assert result.returncode != 0 and 'ValidationContextHook' in result.stderr
    result = _analyze('plot_curve', str(tmp_path / 'missing.json'))
    assert result.returncode != 0 and 'not a json log' in result.stderr


def test_cal_train_time_leaves_out_the_start_up_record(tmp_path):
    log = _write_log(tmp_path / 'scalars.json', RUN)
    result = _analyze('cal_train_time', log)
    assert result.returncode == 0, result.stderr
    assert 'average iter time: 2.0000 s/iter' in result.stdout  # mean of 1, 2, 3
    assert 'slowest record: step 8' in result.stdout
    result = _analyze('cal_train_time', log, '--include-outliers')
    assert 'average iter time: 3.7500 s/iter' in result.stdout  # 9 included
    phased = _write_log(tmp_path / 'dipkd.json', [
        {'phase': 0.0, 'time': 5.0, 'iter': 1, 'step': 1},
        {'phase': 0.0, 'time': 4.0, 'iter': 2, 'step': 2},
        {'phase': 3.0, 'time': 0.5, 'iter': 3, 'step': 3},
        {'phase': 3.0, 'time': 1.5, 'iter': 4, 'step': 4}])
    result = _analyze('cal_train_time', phased, '--include-outliers')
    assert 'phase synthesis: 4.5000 s/iter' in result.stdout
    assert 'phase distill: 1.0000 s/iter' in result.stdout
