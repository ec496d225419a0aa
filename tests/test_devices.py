"""The suite runs on the CPU even where a GPU exists (``conftest.py``), so its exact-resume
and gloo checks mean the same on every machine."""
import os
import subprocess
import sys

import pytest
import torch

from .conftest import TEST_DEVICE


@pytest.mark.skipif(TEST_DEVICE != 'cpu', reason='MMDFKD_TEST_DEVICE=cuda lets GPUs through')
def test_suite_and_its_subprocesses_see_no_gpu():
    assert os.environ['CUDA_VISIBLE_DEVICES'] == ''
    assert not torch.cuda.is_available()
    child = subprocess.run([sys.executable, '-c', 'import torch; print(torch.cuda.is_available())'],
                           capture_output=True, text=True, check=True)
    assert child.stdout.strip() == 'False'


def test_an_unknown_test_device_is_refused_by_name():
    env = dict(os.environ, MMDFKD_TEST_DEVICE='gpu')
    child = subprocess.run([sys.executable, '-m', 'pytest', '-q', '--co', 'tests/test_devices.py'],
                           capture_output=True, text=True, env=env,
                           cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert child.returncode != 0
    assert "MMDFKD_TEST_DEVICE must be 'cpu' (default) or 'cuda', got 'gpu'" in (child.stdout
                                                                                 + child.stderr)
