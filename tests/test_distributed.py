import os
import os.path as osp
import socket
import subprocess
import sys

import torch

from .conftest import ROOT, needs_fmnist, small_eval_options


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
