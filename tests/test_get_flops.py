"""tools/analysis_tools/get_flops.py: the teacher's and student's sizes, checked by hand."""
import json
import os.path as osp
import subprocess
import sys

from .conftest import ROOT, config_path

TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'get_flops.py')

# LeNet-5 on one 1x32x32 image, multiply-adds by hand: conv1 6x28x28x(5x5), conv2
# 16x10x10x(6x5x5), fc 400x120, 120x84, 84x10.
LENET5_FLOPS = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10
LENET5_PARAMS = (6 * 25 + 6) + (16 * 150 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + 850


def _get_flops(tmp_path, config: str, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / 'flops.json'
    proc = subprocess.run([sys.executable, TOOL, config, '--out', str(out), *args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    return proc, (json.loads(out.read_text()) if proc.returncode == 0 else {})


def test_lenet5_counts_equal_the_hand_count(tmp_path):
    proc, counts = _get_flops(tmp_path, config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert counts['input_shape'] == [1, 32, 32]
    for role in ('teacher', 'student'):
        assert counts[role]['flops'] == LENET5_FLOPS == 416_520
        assert counts[role]['params'] == LENET5_PARAMS == 61_706
    assert counts['student_to_teacher']['flops'] == 1.0


def test_half_width_student_is_smaller_and_remote_teachers_are_not_counted(tmp_path):
    from mmengine.config import Config

    from mmdfkd.registry import MODELS
    config = config_path('deepinversion',
                         'deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py')
    proc, counts = _get_flops(tmp_path, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    student = MODELS.build(Config.fromfile(config).model.student)
    assert counts['student']['params'] == sum(p.numel() for p in student.parameters())
    assert counts['student']['flops'] < counts['teacher']['flops'] / 2
    ratio = counts['student_to_teacher']['params']
    assert ratio == counts['student']['params'] / counts['teacher']['params']

    remote = ['--cfg-options', 'model.teacher.model=None', 'model.teacher.url=http://x:1']
    proc, counts = _get_flops(tmp_path, config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py'),
                              *remote)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert counts['teacher'] is None and 'student_to_teacher' not in counts
    assert 'teacher  not counted' in proc.stdout
    proc, _ = _get_flops(tmp_path, config, '--shape', '28', '28')
    assert proc.returncode != 0 and '--shape takes C H W' in proc.stderr
