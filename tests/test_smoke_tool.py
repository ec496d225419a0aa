"""tools/misc/smoke_configs.py: one tiny iteration per config on this machine's device."""
import json
import os.path as osp
import subprocess
import sys

import torch

from mmdfkd.apis.smoke import smoke_train

from .conftest import ROOT, config_path


def test_smoke_tool_trains_each_config_and_reports_a_broken_one(tmp_path):
    good = config_path('dfad', 'dfad_wrn40_2_wrn16_2_cifar10.py')
    broken = tmp_path / 'broken.py'  # a misspelt model key must be reported, not crash
    broken.write_text(f"_base_ = ['{good}']\nmodel = dict(student_stepz=3)\n")
    out = tmp_path / 'results.jsonl'
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'misc', 'smoke_configs.py'), good,
         str(broken), config_path('teachers', 'lenet5bn_fmnist.py'),
         config_path('_base_', 'datafree_lenet5bn_lenet5half_fmnist.py'),
         '--work-dir', str(tmp_path / 'runs'), '--out', str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    first, second = [json.loads(line) for line in out.read_text().splitlines()]
    device = 'cuda:0' if torch.cuda.is_available() else 'cpu'  # where the runner puts it
    assert first['ok'] and first['iter'] == 1 and first['device'] == device
    # the random-weight teacher it saved, and the checkpoint of the iteration it trained
    assert osp.isfile(tmp_path / 'runs' / 'dfad_wrn40_2_wrn16_2_cifar10' / 'teacher.pth')
    assert osp.isfile(tmp_path / 'runs' / 'dfad_wrn40_2_wrn16_2_cifar10' / 'iter_1.pth')
    assert not second['ok'] and 'student_stepz' in second['error']
    assert '1/2 configs ran (2 skipped)' in proc.stdout
    assert 'lenet5bn_fmnist.py skipped: not a data-free config' in proc.stdout
    assert 'datafree_lenet5bn_lenet5half_fmnist.py skipped: a _base_ fragment' in proc.stdout
    # a path that is no file is refused before any config runs (it used to be a traceback
    # after the configs before it had run)
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'misc', 'smoke_configs.py'), good,
         str(tmp_path / 'nope.py'), '--work-dir', str(tmp_path / 'runs2')],
        capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and 'no such config file(s)' in proc.stderr
    assert not osp.exists(tmp_path / 'runs2')


def test_smoke_train_leaves_the_teacher_weights_it_was_given(teacher_ckpt, tmp_path):
    result = smoke_train(config_path('dafl', 'dafl_lenet5bn_lenet5half_fmnist.py'),
                         str(tmp_path), teacher_ckpt)
    assert result['ok'], result.get('traceback')
    saved = torch.load(str(tmp_path / 'iter_1.pth'), weights_only=False)['state_dict']
    given = torch.load(teacher_ckpt, weights_only=False)['state_dict']
    for key, value in given.items():
        torch.testing.assert_close(saved[f'teacher.model.{key}'] if f'teacher.model.{key}'
                                   in saved else saved[f'teacher.{key}'], value)


def test_a_diffdfkd_recipe_without_its_diffusion_model_runs_with_a_random_stand_in(
        teacher_ckpt, tmp_path):
    """Like the teacher, a missing diffusion model is no reason for the smoke check to fail:
    the recipe runs on a tiny random pipeline of the layout it expects. One that exists is
    the one that runs."""
    config = config_path('diffdfkd', 'diffdfkd_lenet5bn_lenet5half_fmnist.py')
    missing = str(tmp_path / 'no_such_pipeline')
    result = smoke_train(config, str(tmp_path / 'a'), teacher_ckpt,
                         cfg_options={'model.synthesizer.pipeline_path': missing})
    assert result['ok'], result.get('traceback')
    stand_in = result['random_pipeline']
    assert osp.isdir(osp.join(stand_in, 'unet')) and osp.isdir(osp.join(stand_in, 'scheduler'))
    again = smoke_train(config, str(tmp_path / 'b'), teacher_ckpt,
                        cfg_options={'model.synthesizer.pipeline_path': stand_in})
    assert again['ok'] and 'random_pipeline' not in again
