import os
import os.path as osp
import pickle
import re
import socket
import subprocess
import sys
import time

import torch

from .conftest import ROOT, config_path, needs_fmnist, small_eval_options


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@needs_fmnist
def test_two_process_gloo_ddp_run(teacher_ckpt, tmp_path):
    """tools/dist_train.sh with 2 CPU processes: gloo backend, separate DDP per part."""
    opts = dict(small_eval_options(50), teacher_ckpt=teacher_ckpt)
    opts.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                 'default_hooks.checkpoint.interval': 2, 'model.synthesizer.batch_size': 16,
                 'model.student_batch_size': 16, 'model.student_steps': 1,
                 'custom_hooks': '[]'})
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable)
    cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'),
           osp.join(ROOT, 'configs', 'dfad', 'dfad_lenet5bn_lenet5half_fmnist.py'), '2',
           '--work-dir', str(tmp_path), '--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert "'backend': 'gloo'" in log or 'backend=gloo' in log or "backend='gloo'" in log
    ckpt = torch.load(tmp_path / 'iter_2.pth', weights_only=False)
    # generator gradients were averaged across ranks, so both ranks kept identical generators;
    # rank 0 saved it, and the student parameters are those of a DDP-wrapped model.
    assert ckpt['meta']['iter'] == 2
    assert "accuracy/top1" in log
    # checkpoint keys carry no DDP `module.` prefix: a single-process model loads it strictly
    assert not any('.module.' in k for k in ckpt['state_dict'])
    from mmengine.config import Config
    from mmdfkd.registry import MODELS
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'dfad', 'dfad_lenet5bn_lenet5half_fmnist.py'))
    cfg.model.teacher_ckpt = teacher_ckpt
    model = MODELS.build(cfg.model)
    model.load_state_dict(ckpt['state_dict'], strict=True)



# A small CNN with a class activation map (WRN-10-1: conv map -> GAP -> linear head).
SMALL_CNN = dict(type='ImageClassifier',
                 backbone=dict(type='WideResNet', depth=10, widen_factor=1),
                 neck=dict(type='GlobalAveragePooling'),
                 head=dict(type='LinearClsHead', num_classes=10, in_channels=64))


def _flat_params(module: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.parameters()])


def _cam_ddp_worker(rank: int, port: int, teacher_ckpt: str, out: str) -> None:
    """One rank of a 2-process gloo run of DataFreeDistiller with the CAM loss."""
    import json

    import torch.distributed as torch_dist
    from mmengine.optim import OptimWrapper, OptimWrapperDict
    from mmengine.registry import init_default_scope

    from mmdfkd.models.wrappers import DataFreeSeparateDDP
    from mmdfkd.registry import MODELS
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch_dist.init_process_group('gloo', rank=rank, world_size=2)
    init_default_scope('mmdfkd')
    torch.manual_seed(0)  # same initial weights on both ranks
    model = MODELS.build(dict(
        type='DataFreeDistiller', teacher=SMALL_CNN, student=SMALL_CNN,
        teacher_ckpt=teacher_ckpt,
        synthesizer=dict(type='InversionSynthesizer', image_shape=(3, 32, 32), batch_size=8,
                         iterations=1),
        distill_loss=dict(type='KLDivergenceLoss'),
        cam_loss=dict(type='CAMConsistencyLoss', loss_weight=10.0), student_batch_size=8))
    model.set_work_dir(os.path.join(os.path.dirname(out), f'rank{rank}'))
    before = _flat_params(model.student)
    torch.manual_seed(1 + rank)  # ranks synthesise different images
    wrapped = DataFreeSeparateDDP(model)
    optim = OptimWrapperDict(student=OptimWrapper(
        torch.optim.SGD(model.student.module.parameters(), lr=0.5)))
    logs = [wrapped.train_step(dict(iteration=i), optim) for i in range(2)]
    after = _flat_params(model.student)
    gathered = [torch.zeros_like(after) for _ in range(2)]
    torch_dist.all_gather(gathered, after)
    if rank == 0:
        with open(out + '.part', 'w') as f:
            json.dump(dict(rank_diff=float((gathered[0] - gathered[1]).abs().max()),
                           moved=float((after - before).abs().max()),
                           loss_cam=[float(log['student.loss_cam']) for log in logs]), f)
        os.replace(out + '.part', out)  # the parent never reads a half-written result
    # Both ranks leave together, and no gloo thread frees a Python tensor during shutdown.
    from mmdfkd.apis import finish_distributed
    finish_distributed()


def test_cam_loss_gradients_are_averaged_across_ranks(tmp_path):
    """DiffDFKD's CAM-consistency term reads the maps during the student's ordinary forward,
    so the update goes through DDP: two ranks that trained on different synthetic images
    still hold identical students (a forward that bypassed the wrapper would leave each rank
    with its own gradients and the students would drift apart)."""
    import json

    import torch.multiprocessing as mp
    from mmdfkd.registry import MODELS
    teacher_ckpt, out = str(tmp_path / 'teacher.pth'), str(tmp_path / 'result.json')
    torch.save({'state_dict': MODELS.build(SMALL_CNN).state_dict()}, teacher_ckpt)
    context = mp.spawn(_cam_ddp_worker, args=(_free_port(), teacher_ckpt, out), nprocs=2,
                       join=False)
    # Bounded wait: a rank stuck in gloo's teardown after the result is written must not
    # hang the suite (seen twice with torch 2.13, even after the barrier); the result
    # decides the test, so the ranks get 20 s after writing it to exit on their own.
    deadline = time.monotonic() + 300
    written_at = None
    while not context.join(timeout=1):
        now = time.monotonic()
        if written_at is None and os.path.exists(out):
            written_at = now
        if now > deadline or (written_at is not None and now - written_at > 20):
            for process in context.processes:
                process.kill()
            break
    with open(out) as f:
        result = json.load(f)
    assert all(v > 0 and v == v for v in result['loss_cam'])  # present, finite, non-zero
    assert result['moved'] > 1e-4  # the students did train
    assert result['rank_diff'] < 1e-6


@needs_fmnist
def test_pool_method_trains_and_resumes_in_two_processes(teacher_ckpt, tmp_path):
    """Every pool-based method failed under tools/dist_train.sh: mmengine broadcasts each
    state-dict entry at start, and a pool's index is not a tensor ("data should not be
    empty"). A distributed resume also restored no student weight (a load hook renamed the
    keys mmengine's loader expects; it only warned of missing keys). Now each process keeps
    its own pool files, the log counts every process's queries, and a resume restores the
    student, the count and each process's pool."""
    config = osp.join(ROOT, 'configs', 'deepinversion',
                      'deepinversion_lenet5bn_lenet5half_fmnist.py')
    opts = dict(small_eval_options(50), teacher_ckpt=teacher_ckpt)
    opts.update({'model.synthesizer.batch_size': 16, 'model.student_batch_size': 16,
                 'model.student_steps': 1, 'model.synthesizer.iterations': 2,
                 'model.warmup_iters': 0, 'model.synthesizer.pool.max_images': 32,
                 'default_hooks.checkpoint.interval': 1, 'default_hooks.logger.interval': 1,
                 'custom_hooks': '[]'})

    def dist_train(max_iters: int, *extra: str, **overrides) -> str:
        options = dict(opts, **overrides)
        options.update({'train_cfg.max_iters': max_iters, 'train_cfg.val_interval': max_iters})
        env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1',
                   PYTHON=sys.executable)
        cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), config, '2', '--work-dir',
               str(tmp_path), *extra, '--cfg-options'] + [f'{k}={v}' for k, v in options.items()]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-4000:]
        return log

    import re
    log = dist_train(2)
    first = torch.load(tmp_path / 'iter_2.pth', weights_only=False)
    per_process = int(first['state_dict']['teacher_queries'])
    # 2 inversion steps + labelling + 1 student step, 16 images each, per iteration
    assert per_process == 2 * 4 * 16
    logged = [float(q) for line in log.splitlines() if 'Iter(train)' in line
              for q in re.findall(r'teacher_queries: ([0-9.]+)', line)]
    assert logged == [per_process, 2 * per_process]  # both processes, iterations 1 and 2
    # the validation after iteration 2 is logged with the same count (ValidationContextHook)
    validated = [float(q) for line in log.splitlines() if 'Iter(val)' in line
                 for q in re.findall(r'teacher_queries: ([0-9.]+)', line)]
    assert validated == [2 * per_process]
    pool = first['state_dict']['synthesizer.pool._extra_state']
    assert [name for name, _ in pool['batches']] == ['batch_r0_0000000.pt', 'batch_r0_0000001.pt']
    files = sorted(os.listdir(tmp_path / 'synthetic_pool'))
    assert files == ['batch_r0_0000000.pt', 'batch_r0_0000001.pt',
                     'batch_r1_0000000.pt', 'batch_r1_0000001.pt']
    # Each process's random state (gathered to rank 0, which alone writes the file), so a
    # resumed process continues its own stream (diff_rank_seed: the streams differ).
    states = first['meta']['random_state']
    assert len(states) == 2 and not torch.equal(states[0]['torch'], states[1]['torch'])

    # Resumed for one iteration without student steps (still in warm-up) and without the
    # adversarial term (its student forward moves the BN statistics): the student must
    # be the checkpoint's exactly, the count continues, and each process adds and evicts in
    # its own files (rank 1's first batch goes, so it held its own names, not rank 0's).
    log = dist_train(3, '--resume', **{'model.warmup_iters': 10,
                                       'model.synthesizer.adversarial': None})
    assert 'missing keys' not in log and 'resumed epoch: 0, iter: 2' in log
    resumed = torch.load(tmp_path / 'iter_3.pth', weights_only=False)
    for key, value in first['state_dict'].items():
        if key.startswith('student.'):
            assert torch.equal(resumed['state_dict'][key], value), key
    assert int(resumed['state_dict']['teacher_queries']) == per_process + 3 * 16
    # Rank 0 keeps the batch it dropped while iter_2.pth, the latest checkpoint until
    # iter_3.pth is written, still named it (deleted at its next add; the run ended first).
    assert sorted(os.listdir(tmp_path / 'synthetic_pool')) == [
        'batch_r0_0000000.pt', 'batch_r0_0000001.pt', 'batch_r0_0000002.pt',
        'batch_r1_0000001.pt', 'batch_r1_0000002.pt']


def test_budgeted_black_box_runs_are_refused_in_several_processes(teacher_ckpt, monkeypatch):
    """Each process would buy and count its own queries: a run of N processes would spend N
    times model.teacher.query_budget (and DIP-KD N times its labelled set)."""
    import pytest
    from mmengine import dist
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from mmdfkd.registry import MODELS
    from .conftest import LENET5BN, config_path
    init_default_scope('mmdfkd')
    monkeypatch.setattr(dist, 'get_world_size', lambda *args: 2)
    with pytest.raises(ValueError, match=r'query_budget caps one process.s queries.*2 '
                                         r'processes.*query_budget=None'):
        MODELS.build(dict(type='HardLabelTeacher', num_classes=10, model=LENET5BN,
                          checkpoint=teacher_ckpt, query_budget=100))
    MODELS.build(dict(type='HardLabelTeacher', num_classes=10, model=LENET5BN,
                      checkpoint=teacher_ckpt))  # no budget: nothing to overspend
    cfg = Config.fromfile(config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py'))
    cfg.model.teacher.checkpoint = teacher_ckpt
    with pytest.raises(ValueError, match=r'DIP-KD runs in one process .*this run has 2'):
        MODELS.build(cfg.model)


@needs_fmnist
def test_two_process_test_equals_one_process(teacher_ckpt, tmp_path):
    """tools/dist_test.sh: each process scores its share of the test split and mmengine
    gathers them; with an odd number of images the sampler pads one process's share, and the
    padded copy must not reach the metric or the dump."""
    from .runner_utils import last_checkpoint, run_datafree
    config = osp.join(ROOT, 'configs', 'dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')
    run_datafree('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path / 'run'),
                 teacher_ckpt, max_iters=1)
    ckpt = last_checkpoint(str(tmp_path / 'run'))
    options = ['--cfg-options'] + [f'{k}={v}' for k, v in small_eval_options(101).items()]
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable)
    results = {}
    for name, launch in (('one', [sys.executable, osp.join(ROOT, 'tools', 'test.py')]),
                         ('two', ['bash', osp.join(ROOT, 'tools', 'dist_test.sh')])):
        cmd = launch + [config, ckpt] + (['2'] if name == 'two' else []) + [
            '--work-dir', str(tmp_path / name), '--out', str(tmp_path / f'{name}.pkl'),
            '--out-item', 'pred'] + options
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600,
                              cwd=ROOT)
        log = proc.stdout + proc.stderr
        assert proc.returncode == 0, log[-4000:]
        assert 'missing keys' not in log
        with open(tmp_path / f'{name}.pkl', 'rb') as f:
            results[name] = (log, pickle.load(f))
    assert 'Distributed training: True' in results['two'][0]
    one, two = results['one'][1], results['two'][1]
    assert len(one) == len(two) == 101
    assert [r['sample_idx'] for r in two] == list(range(101))
    for a, b in zip(one, two):
        torch.testing.assert_close(a['pred_score'], b['pred_score'])
    accuracy = [re.search(r'accuracy/top1: ([0-9.]+)', log).group(1)
                for log, _ in results.values()]
    assert accuracy[0] == accuracy[1]


# Hook of the test below: delays rank 1's start and saves each rank's student at the end.
RANK_SKEW_HOOK = '''
import time
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmdfkd.registry import HOOKS


@HOOKS.register_module()
class RankSkewHook(Hook):
    def __init__(self, delay_s, out):
        self.delay_s, self.out = delay_s, out

    def before_train(self, runner):
        if dist.get_rank() == 1:
            time.sleep(self.delay_s)

    def after_train(self, runner):
        model = getattr(runner.model, 'module', runner.model)
        params = {k: v.detach().clone() for k, v in model.student.named_parameters()}
        torch.save({'iter': runner.iter, 'params': params},
                   f'{self.out}/rank{dist.get_rank()}.pt')
'''


@needs_fmnist
def test_clock_decisions_agree_across_processes(teacher_ckpt, tmp_path):
    """Each process used its own clock, started when it reached the loop. With rank 1 two
    seconds behind, rank 0 ended training on train_cfg.time_budget_s while rank 1 went on
    and waited in its next collective forever; the budget-fitted learning rate differed
    between the ranks, so the DDP replicas drifted apart; a TimedValidationHook mark passed
    on one rank only would validate there alone. Now every rank reads rank 0's clock."""
    (tmp_path / 'rank_skew_hook.py').write_text(RANK_SKEW_HOOK)
    config = tmp_path / 'skewed.py'
    config.write_text(
        f"_base_ = [{config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')!r}]\n"
        "custom_imports = dict(imports=['mmdfkd', 'rank_skew_hook'], "
        "allow_failed_imports=False)\n"
        f"custom_hooks = [dict(type='RankSkewHook', delay_s=2.0, out={str(tmp_path)!r}),\n"
        "                dict(type='TimedValidationHook', marks_s=(3.0, ))]\n")
    opts = dict(small_eval_options(50), teacher_ckpt=teacher_ckpt)
    # The step count never ends the schedule (T_max), the time budget does.
    opts.update({'train_cfg.max_iters': 100000, 'train_cfg.val_interval': 100000,
                 'train_cfg.time_budget_s': 8, 'param_scheduler.student.T_max': 100000,
                 'param_scheduler.synthesizer.T_max': 100000,
                 'default_hooks.checkpoint.interval': 100000,
                 'model.synthesizer.batch_size': 16, 'model.student_batch_size': 16,
                 'model.student_steps': 1})
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PYTHONPATH=os.pathsep.join(filter(None, [str(tmp_path),
                                                        os.environ.get('PYTHONPATH')])))
    cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), str(config), '2', '--work-dir',
           str(tmp_path / 'work'), '--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]
    # Without agreement the run hangs; the timeout turns that into a failure (SIGTERM to
    # the launcher stops its workers too). The log goes to a file, not a pipe the workers
    # could keep open.
    log_file = tmp_path / 'log.txt'
    with open(log_file, 'w') as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            proc.wait(timeout=240)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=60)
            raise AssertionError('the two processes did not finish: '
                                 + log_file.read_text()[-3000:]) from None
    log = log_file.read_text()
    assert proc.returncode == 0, log[-4000:]
    assert 'train_cfg.time_budget_s=8 reached at iteration' in log, log[-4000:]
    marks = re.findall(r'TimedValidationHook: \d+s into training \(mark 3s\)', log)
    assert len(marks) == 1, log[-4000:]
    rank0 = torch.load(tmp_path / 'rank0.pt', weights_only=True)
    rank1 = torch.load(tmp_path / 'rank1.pt', weights_only=True)
    assert rank0['iter'] == rank1['iter'] > 1, log[-4000:]
    for name, value in rank0['params'].items():
        assert torch.equal(value, rank1['params'][name]), name


@needs_fmnist
def test_sigterm_to_dist_train_saves_a_checkpoint_in_every_process(teacher_ckpt, tmp_path):
    """A scheduler pre-empting a job, or `kill PID` of tools/dist_train.sh, sends SIGTERM to
    the script. Its shell ran the launcher as a child and held the signal until training
    ended by itself: nothing stopped and no checkpoint was saved. The launcher now takes the
    shell's place, passes SIGTERM to every process, and they save the iteration under way."""
    import signal
    opts = dict(small_eval_options(50), teacher_ckpt=teacher_ckpt)
    opts.update({'train_cfg.max_iters': 100000, 'train_cfg.val_interval': 100000,
                 'default_hooks.checkpoint.interval': 100000,
                 'default_hooks.logger.interval': 1, 'model.synthesizer.batch_size': 16,
                 'model.student_batch_size': 16, 'model.student_steps': 1,
                 'custom_hooks': '[]'})
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable)
    cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'),
           config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py'), '2',
           '--work-dir', str(tmp_path / 'work'), '--cfg-options'] + [
               f'{k}={v}' for k, v in opts.items()]
    log_file = tmp_path / 'log.txt'
    with open(log_file, 'w') as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 240
            while 'Iter(train)' not in log_file.read_text():
                assert proc.poll() is None and time.time() < deadline, \
                    log_file.read_text()[-3000:]
                time.sleep(1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    log = log_file.read_text()
    assert 'SIGTERM received' in log, log[-3000:]
    stopped = re.findall(r'stopping at iteration (\d+) \(max_iters 100000\)', log)
    assert stopped, log[-3000:]
    assert 'continue with `tools/dist_train.sh CONFIG 2 --resume`' in log
    last = (tmp_path / 'work' / 'last_checkpoint').read_text().strip()
    assert last.endswith(f'iter_{stopped[0]}.pth') and osp.isfile(last)


FAILING_HOOK = '''
from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mmdfkd.registry import HOOKS


@HOOKS.register_module()
class FailOnRankOneHook(Hook):
    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if get_rank() == 1 and runner.iter + 1 == 2:
            raise RuntimeError('disk of rank 1 gone at iteration 2')
'''


@needs_fmnist
def test_a_failure_on_one_rank_ends_the_run_and_names_the_cause(teacher_ckpt, tmp_path):
    """An exception on one rank ends the whole run at once (no rank left waiting in a
    collective) with a failing exit code, and torchrun's closing summary shows that rank's
    exception and traceback (tools/train.py's @record) instead of "To enable traceback
    see ...", which is all it showed before."""
    (tmp_path / 'failing_hook.py').write_text(FAILING_HOOK)
    config = tmp_path / 'failing.py'
    config.write_text(
        f"_base_ = ['{config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')}']\n"
        "custom_imports = dict(imports=['failing_hook'], allow_failed_imports=False)\n"
        "custom_hooks = [dict(type='FailOnRankOneHook')]\n")
    opts = dict(small_eval_options(50), teacher_ckpt=teacher_ckpt)
    opts.update({'train_cfg.max_iters': 6, 'train_cfg.val_interval': 6,
                 'model.synthesizer.batch_size': 16, 'model.student_batch_size': 16,
                 'model.student_steps': 1})
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1', PYTHON=sys.executable,
               PYTHONPATH=f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    cmd = ['bash', osp.join(ROOT, 'tools', 'dist_train.sh'), str(config), '2', '--work-dir',
           str(tmp_path / 'run'), '--cfg-options'] + [f'{k}={v}' for k, v in opts.items()]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    summary = log[log.index('Root Cause (first observed failure)'):]
    assert 'rank      : 1 (local_rank: 1)' in summary, summary[:3000]
    assert 'RuntimeError: disk of rank 1 gone at iteration 2' in summary, summary[:3000]
    assert 'in after_train_iter' in summary  # the traceback, not only the exit code
