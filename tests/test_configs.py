import glob
import json
import os.path as osp

import pytest
import torch

from mmdfkd.apis import build_runner, load_config

from .conftest import config_path, needs_fmnist, small_eval_options
from .runner_utils import last_checkpoint, run_datafree

METHOD_CONFIGS = sorted(
    osp.relpath(p, config_path())
    for method in ('dafl', 'dfad', 'zskt')
    for p in glob.glob(config_path(method, '*_fmnist.py')))


def test_every_method_has_an_fmnist_config():
    assert [osp.basename(p) for p in METHOD_CONFIGS] == [
        'dafl_lenet5bn_lenet5half_fmnist.py', 'dfad_lenet5bn_lenet5half_fmnist.py',
        'zskt_lenet5bn_lenet5half_fmnist.py'
    ]


@needs_fmnist
@pytest.mark.parametrize('config', METHOD_CONFIGS)
def test_method_config_trains_validates_and_checkpoints(config, teacher_ckpt, tmp_path):
    runner = run_datafree(config, str(tmp_path), teacher_ckpt, max_iters=2)
    assert runner.iter == 2
    ckpt = torch.load(last_checkpoint(str(tmp_path)), weights_only=False)
    assert ckpt['meta']['iter'] == 2
    assert set(ckpt['optimizer']) >= {'student', 'synthesizer'} or 'student' in str(
        ckpt['optimizer'].keys())
    scalars = glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))
    rows = [json.loads(line) for line in open(scalars[0])]
    assert any('accuracy/top1' in r for r in rows)
    assert any('synth_img_per_s' in r for r in rows)
    # the per-class grid of synthetic images was written as a PNG
    assert glob.glob(str(tmp_path / '*' / 'vis_data' / 'vis_image' / 'synthetic_per_class*.png'))


@needs_fmnist
@pytest.mark.parametrize('config', ['teachers/lenet5bn_fmnist.py', 'teachers/lenet5_fmnist.py',
                                    'baselines/lenet5half_fmnist_realdata.py'])
def test_supervised_configs_train(config, tmp_path):
    opts = dict(small_eval_options(), **{
        'train_dataloader.dataset.indices': 256, 'train_cfg.max_epochs': 1,
        'train_cfg.val_interval': 1, 'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False})
    cfg = load_config(config_path(*config.split('/')), cfg_options=opts,
                      work_dir=str(tmp_path))
    cfg.experiment_name = f'test_{osp.basename(str(tmp_path))}'
    runner = build_runner(cfg)
    runner.train()
    assert osp.isfile(tmp_path / 'epoch_1.pth')


@pytest.mark.parametrize('config', ['teachers/resnet34_cifar10.py', 'teachers/wrn40_2_cifar100.py',
                                    'teachers/resnet34_cifar100.py', 'teachers/wrn40_2_cifar10.py'])
def test_cifar_teacher_configs_build(config):
    from mmengine.config import Config
    from mmdfkd.registry import MODELS
    cfg = Config.fromfile(config_path(*config.split('/')))
    model = MODELS.build(cfg.model)
    n = 100 if 'cifar100' in config else 10
    assert model(torch.randn(2, 3, 32, 32), mode='tensor').shape == (2, n)


def test_datafree_runner_rejects_a_train_dataloader(teacher_ckpt, tmp_path):
    cfg = load_config(config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py'),
                      cfg_options=dict(small_eval_options(), teacher_ckpt=teacher_ckpt),
                      work_dir=str(tmp_path))
    cfg.train_dataloader = dict(batch_size=2)
    runner = build_runner(cfg)
    with pytest.raises(ValueError, match='remove `train_dataloader`'):
        runner.train()
