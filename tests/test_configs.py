import re
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmdfkd.apis import build_runner, load_config

from .conftest import config_path, needs_fmnist, small_eval_options
from .runner_utils import (last_checkpoint, one_iteration_options, run_datafree,
                           uses_inversion_pool)

METHOD_CONFIGS = sorted(
    osp.relpath(p, config_path())
    for method in ('dafl', 'dfad', 'zskt', 'cpsc_dfkd')
    for p in glob.glob(config_path(method, '*_fmnist.py')))


WHITE_BOX_METHODS = ('dafl', 'dfad', 'zskt', 'deepinversion', 'cmi', 'fast_dfkd', 'cpsc_dfkd')
CIFAR_SETTINGS = ('resnet34_resnet18_cifar10', 'resnet34_resnet18_cifar100',
                  'wrn40_2_wrn16_2_cifar10', 'wrn40_2_wrn16_2_cifar100')
CIFAR_CONFIGS = [f'{m}/{m}_{s}.py' for m in WHITE_BOX_METHODS for s in CIFAR_SETTINGS]
CIFAR_CONFIGS.append('dipkd/dipkd_resnet18_resnet18_cifar10.py')
# Teacher and student named by mmpretrain model-zoo configs (`cfg_path`).
CIFAR_CONFIGS.append('deepinversion/deepinversion_resnet34_mobilenetv3small_cifar10.py')


def test_every_method_has_an_fmnist_config():
    for method in WHITE_BOX_METHODS:
        assert osp.isfile(config_path(method, f'{method}_lenet5bn_lenet5half_fmnist.py'))
    for config in CIFAR_CONFIGS:
        assert osp.isfile(config_path(*config.split('/'))), config


@pytest.mark.parametrize('config', CIFAR_CONFIGS)
def test_cifar_method_config_trains_an_iteration(config, tmp_path):
    """The CIFAR recipes build their real teacher/student pair and run one synthesis +
    student iteration (random teacher weights and no CIFAR files on this machine, so tiny
    sizes and no validation)."""
    from mmengine.config import Config
    from mmdfkd.registry import MODELS
    cfg = Config.fromfile(config_path(*config.split('/')))
    teacher = MODELS.build(cfg.model.teacher.get('model', cfg.model.teacher))
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': teacher.state_dict()}, ckpt)
    opts = one_iteration_options(config, ckpt)
    cfg = load_config(config_path(*config.split('/')), cfg_options=opts,
                      work_dir=str(tmp_path))
    cfg.experiment_name = f'test_{osp.basename(str(tmp_path))}'
    runner = build_runner(cfg)
    runner.train()
    n = 100 if config.endswith('cifar100.py') else 10
    device = next(runner.model.student.parameters()).device  # a GPU where the runner has one
    assert runner.model.student(torch.randn(2, 3, 32, 32, device=device),
                                mode='tensor').shape == (2, n)
    if uses_inversion_pool(config):
        assert len(runner.model.synthesizer.pool) == 4
    if 'dipkd' in config:  # every prior labelled once, within the budget
        assert len(runner.model.synthesizer.pool) == 8
        assert runner.model.teacher.queries == 8
    assert osp.isfile(tmp_path / f'iter_{runner.iter}.pth')


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
                                    'teachers/resnet18_cifar10.py',
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


ALL_CONFIGS = sorted(p for p in glob.glob(config_path('**', '*.py'), recursive=True)
                     if '_base_' not in p)


def test_every_shipped_config_passes_the_key_check():
    """No shipped config sets a key its class does not take (the check must not refuse one);
    CheckpointHook's keys passed on to Runner.save_checkpoint count as taken."""
    from mmengine.hooks import CheckpointHook

    from mmdfkd.apis.config_keys import accepted_arguments
    assert {'interval', 'save_last', 'meta'} <= set(accepted_arguments(CheckpointHook))
    from mmdfkd.apis.config_keys import check_runner_config_keys
    assert len(ALL_CONFIGS) > 40
    for path in ALL_CONFIGS:
        check_runner_config_keys(load_config(path))


class _Base:
    def __init__(self, a: int = 1, b: int = 2) -> None:
        self.a, self.b = a, b


class _HandsKwargsToSuper(_Base):
    def __init__(self, c: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)


class _KeepsKwargs(_Base):
    def __init__(self, c: int = 3, **kwargs) -> None:
        super().__init__()
        self.options = kwargs


def test_key_check_follows_kwargs_handed_to_the_parent_class():
    """mmpretrain's heads and backbones take **kwargs only to hand them to their parent
    (LinearClsHead -> ClsHead): their keys are checked against the chain, so a misspelt
    `head.num_classs` is refused before the build. **kwargs kept for anything else still
    accept any key."""
    from mmpretrain.models import LinearClsHead, ResNet_CIFAR

    from mmdfkd.apis.config_keys import accepted_arguments
    assert accepted_arguments(_HandsKwargsToSuper) == ['c', 'a', 'b']
    assert accepted_arguments(_KeepsKwargs) is None
    assert set(accepted_arguments(LinearClsHead)) == {'num_classes', 'in_channels', 'init_cfg',
                                                      'loss', 'topk', 'cal_acc'}
    assert {'depth', 'deep_stem', 'num_stages', 'out_indices'} <= set(
        accepted_arguments(ResNet_CIFAR))


@pytest.mark.parametrize('config,key,value,message', [
    # a misspelt key: the close match is named
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
     'model.student_batchsize', 64,
     r"model.student_batchsize: DataFreeDistiller takes no argument 'student_batchsize' "
     r"\(did you mean 'student_batch_size'\?\)"),
    # a key one level too high: the path where it belongs is named
    ('dipkd/dipkd_lenet5_lenet5_fmnist.py', 'model.query_budget', 100,
     r'model.query_budget: DIPKD .* \(did you mean model.teacher.query_budget\?\)'),
    # a key of a nested component, with the component's arguments listed
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
     'model.synthesizer.pool.capacity', 10,
     r"model.synthesizer.pool.capacity: SyntheticDataPool .* Its arguments: max_images"),
    # mmpretrain classes are checked too (teacher recipes)
    ('teachers/lenet5bn_fmnist.py', 'model.backbone.widht', 2.0,
     r"model.backbone.widht: LeNet .*did you mean 'width'"),
    # the loop, the optimizers and the default hooks (these used to be torch's or mmengine's
    # bare TypeErrors; CheckpointHook's only at its first save, as it passes unknown keys on)
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'train_cfg.max_iter', 5,
     r"train_cfg.max_iter: DataFreeTrainLoop .*did you mean 'max_iters'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'optim_wrapper.student.optimizer.lrr', 0.1,
     r"optim_wrapper.student.optimizer.lrr: SGD .*did you mean 'lr'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'default_hooks.checkpoint.intervall', 5,
     r"default_hooks.checkpoint.intervall: CheckpointHook .*did you mean 'interval'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'val_evaluator.top_k', 1,
     r"val_evaluator.top_k: Accuracy .*did you mean 'topk'"),
    # schedulers (a data-free config keys them by optimizer) and the random seed's settings
    # (both were bare TypeErrors of the build)
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
     'param_scheduler.student.T_maxx', 5,
     r"param_scheduler.student.T_maxx: BudgetCosineAnnealingLR .*did you mean 'T_max'"),
    ('dipkd/dipkd_lenet5_lenet5_fmnist.py', 'param_scheduler.primer.eta_mn', 0.0,
     r"param_scheduler.primer.eta_mn: CosineAnnealingLR .*did you mean 'eta_min'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'log_processor.window_sise', 5,
     r"log_processor.window_sise: LogProcessor .*did you mean 'window_size'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'val_dataloader.dataset.data_rooot', '/d',
     r"val_dataloader.dataset.data_rooot: FashionMNISTIdx .*did you mean 'data_root'"),
    ('teachers/lenet5bn_fmnist.py', 'train_dataloader.dataset.pipeline.0.sise', 32,
     r"train_dataloader.dataset.pipeline\[0\].sise: CenterPad .*did you mean 'size'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'randomness.sed', 1,
     r"randomness.sed: mmengine's Runner.set_randomness .*did you mean 'seed'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'randomness.seed', -1,
     r"randomness.seed must be an int in \[0, 2\*\*32 - 1\] .*got -1"),
    # misspelt type names (mmengine's registry KeyError came only after the teacher and the
    # rest were built, without the key path), in each registry a config reaches
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
     'model.synthesizer.type', 'InversionSynthesiser',
     r"model.synthesizer.type: 'InversionSynthesiser' is not in the model registry .*"
     r"Did you mean 'InversionSynthesizer'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'optim_wrapper.student.optimizer.type', 'SDG',
     r"optim_wrapper.student.optimizer.type: 'SDG' .*optimizer registry.*Did you mean 'SGD'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'default_hooks.logger.type', 'LogerHook',
     r"default_hooks.logger.type: 'LogerHook' is not in the hook registry.*'LoggerHook'"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'visualizer.vis_backends.0.type',
     'TensorboardVisBackends',
     r"visualizer.vis_backends\[0\].type: .*vis_backend registry.*'TensorboardVisBackend'"),
    ('teachers/lenet5bn_fmnist.py', 'train_dataloader.dataset.pipeline.0.type', 'CenterPads',
     r"train_dataloader.dataset.pipeline\[0\].type: .*transform registry.*'CenterPad'"),
    # values torch.optim refuses (its "Invalid learning rate: -0.1" named no key)
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'optim_wrapper.student.optimizer.lr', -0.1,
     r"optim_wrapper.student.optimizer.lr = -0.1: torch.optim.SGD refuses it: "
     r"\"Invalid learning rate: -0.1\""),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'optim_wrapper.synthesizer.optimizer.betas',
     (1.2, 0.9), r"optim_wrapper.synthesizer.optimizer.betas = \(1.2, 0.9\): torch.optim.Adam"),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', 'optim_wrapper.student.optimizer.lr', '0.1',
     r"optim_wrapper.student.optimizer.lr = '0.1': torch.optim.SGD refuses it"),
    # the augment lists take torchvision.transforms.v2 names, checked there (keys too)
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
     'model.student_augment', [dict(type='RandomHorizontalFlp')],
     r"model.student_augment\[0\].type: 'RandomHorizontalFlp' is not in "
     r"torchvision.transforms.v2 .*'RandomHorizontalFlip'"),
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
     'model.student_augment', [dict(type='RandomHorizontalFlip', prob=0.5)],
     r"model.student_augment\[0\].prob: RandomHorizontalFlip takes no argument 'prob'.*"
     r"help\(torchvision.transforms.v2.RandomHorizontalFlip\)"),
])
def test_unknown_config_key_is_refused_before_building_with_its_path(config, key, value,
                                                                       message, tmp_path):
    cfg = load_config(config_path(*config.split('/')), cfg_options={key: value},
                      work_dir=str(tmp_path))
    with pytest.raises(ValueError, match=message):
        build_runner(cfg)
    assert not glob.glob(str(tmp_path / '*' / '*.log')), 'refused before the runner started'


@pytest.mark.parametrize('config,options,message', [
    # a config variable is substituted when the file is read: this ran all 700 iterations
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', {'max_iters': 5},
     r'max_iters is a variable of .*changes nothing; set the keys that follow from it instead '
     r'\(what the config gives with max_iters = 5\): train_cfg.max_iters=5 '
     r'param_scheduler.student.T_max=5 param_scheduler.synthesizer.T_max=5\.$'),
    # keys computed from the variable too, each with the value the config gives it: the
    # shared keys alone left DIP-KD's phases sized for 50K images
    ('dipkd/dipkd_lenet5_lenet5_fmnist.py', {'num_images': 10000},
     r'train_cfg.max_iters=4120 .*model.teacher.query_budget=10000 '
     r'model.synthesizer.num_images=10000 model.phase_iters.synthesis=20 '
     r'model.phase_iters.primer=2000 .*param_scheduler.student.T_max=2000\.$'),
    # a variable of a base: the base's keys the config does not set again
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
     {'max_iters': 5}, r'\(what the config gives with max_iters = 5\): train_cfg.max_iters=5 '
                       r'param_scheduler.student.T_max=5\.$'),
    ('dipkd/dipkd_lenet5_lenet5_fmnist.py', {'phase_iters.synthesis': 50},
     r'phase_iters is a variable .*value 100 instead: model.phase_iters.synthesis=50'),
    ('dfad/dfad_lenet5bn_lenet5half_fmnist.py', {'max_iter': 5},
     r'has no top-level max_iter and nothing reads one \(did you mean train_cfg.max_iters\?\)'),
])
def test_an_option_nothing_reads_is_refused_with_the_key_to_set(config, options, message,
                                                                tmp_path):
    with pytest.raises(ValueError, match=message):
        load_config(config_path(*config.split('/')), cfg_options=options)
    # a top-level setting no key uses may be read from runner.cfg by custom code
    own = tmp_path / 'own.py'
    own.write_text(f"_base_ = ['{config_path(*config.split('/'))}']\n"
                   "hook_setting = 'read-by-a-custom-hook'\n")
    assert load_config(str(own), cfg_options={'hook_setting': 'x'}).hook_setting == 'x'
    # what the runner, the tools and mmdfkd read goes through
    cfg = load_config(config_path(*config.split('/')), cfg_options={
        'teacher_ckpt': '/t.pth', 'data_root': '/d', 'work_dir': '/w', 'randomness.seed': 3,
        'train_cfg.max_iters': 5})
    assert cfg.train_cfg.max_iters == 5 and cfg.randomness.seed == 3


def test_a_mistyped_config_path_names_the_closest_config():
    """A missing config said only 'not found'."""
    dfad = config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')
    with pytest.raises(FileNotFoundError, match=r'not found \(did you mean '
                                                + re.escape(dfad) + r'\?\)'):
        load_config(dfad.replace('lenet5bn', 'lenet5'))
    # the folder left out: looked for under the configs/ folder the path names
    dipkd = config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py')
    with pytest.raises(FileNotFoundError, match=re.escape(f'(did you mean {dipkd}?)')):
        load_config(dipkd.replace('/dipkd/', '/'))


def test_the_keys_following_a_variable_are_what_the_config_gives_with_its_new_value(tmp_path):
    """The suggested overrides are exact: for DIP-KD's num_images=10000 they are the shipped
    10K config's values of those keys; a key a child config sets itself is left out."""
    from mmdfkd.apis.config import _leaf_paths, keys_following_variable
    following = keys_following_variable(
        config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py'), 'num_images', 10000)
    shipped = dict(_leaf_paths(Config.fromfile(
        config_path('dipkd', 'dipkd_10k_lenet5_lenet5_fmnist.py')).to_dict()))
    assert len(following) == 16
    assert {p: new for p, (_, new) in following.items()} == {p: shipped[p] for p in following}
    assert following['model.teacher.query_budget'] == (50000, 10000)
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = ['{config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')}']\n"
                     "train_cfg = dict(max_iters=300)\n")
    assert set(keys_following_variable(str(child), 'max_iters', 5)) == {
        'param_scheduler.student.T_max', 'param_scheduler.synthesizer.T_max'}
    assert keys_following_variable(str(child), 'no_such_variable', 5) is None


def test_a_child_config_redefining_a_base_variable_is_refused_unless_it_sets_the_keys(
        tmp_path):
    """mmengine substitutes a base's variables when the base is read: `max_iters = 300` in a
    child config trained the base's 700 iterations without a word."""
    base = config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')

    def child(name: str, body: str) -> str:
        path = tmp_path / f'{name}.py'
        path.write_text(f"_base_ = ['{base}']\n{body}")
        return str(path)

    with pytest.raises(ValueError, match=r'sets max_iters = 300, but train_cfg.max_iters '
                                         r'still holds 700, the value of max_iters in its '
                                         r'base .*train_cfg = dict\(max_iters=max_iters\)'):
        load_config(child('short', 'max_iters = 300\n'))
    fixed = child('fixed', 'max_iters = 300\ntrain_cfg = dict(max_iters=max_iters)\n')
    assert load_config(fixed).train_cfg.max_iters == 300
    # data_root too: only --cfg-options data_root=DIR is carried to every dataloader
    with pytest.raises(ValueError, match=r"sets data_root = '/elsewhere', but "
                                         r'val_dataloader.dataset.data_root, '
                                         r'test_dataloader.dataset.data_root still hold'):
        load_config(child('moved', "data_root = '/elsewhere'\n"))


@pytest.mark.parametrize('key', ['model.teacher_ckpt', 'teacher_ckpt'])
def test_the_teacher_checkpoint_given_on_either_key_is_the_one_distilled(key, teacher_ckpt,
                                                                         tmp_path):
    """``--cfg-options model.teacher_ckpt=PATH`` used to be overwritten by the file's top-level
    ``teacher_ckpt`` default without a word, and the run distilled that teacher instead."""
    config = config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')
    cfg = load_config(config, cfg_options={key: teacher_ckpt}, work_dir=str(tmp_path / 'run'))
    cfg.experiment_name = f'test_teacher_ckpt_on_{key}'
    runner = build_runner(cfg)
    saved = torch.load(teacher_ckpt, map_location='cpu', weights_only=False)['state_dict']
    teacher = runner.model.teacher.state_dict()
    assert all(torch.equal(teacher[k].cpu(), v) for k, v in saved.items())
    assert runner.cfg.teacher_ckpt == runner.cfg.model.teacher_ckpt == teacher_ckpt

    both = load_config(config, cfg_options={'teacher_ckpt': teacher_ckpt,
                                            'model.teacher_ckpt': str(tmp_path / 'other.pth')},
                       work_dir=str(tmp_path / 'both'))
    with pytest.raises(ValueError, match=r"teacher_ckpt='.*' and model.teacher_ckpt='.*"
                                         r"other.pth' both changed: give the teacher "
                                         r'checkpoint once'):
        build_runner(both)


def test_print_config_shows_the_overrides_where_they_land():
    """tools/misc/print_config.py prints what tools/train.py will run: the teacher_ckpt in the
    teacher wrapper, data_root in every dataloader."""
    import subprocess
    import sys

    from .conftest import ROOT
    done = subprocess.run(
        [sys.executable, f'{ROOT}/tools/misc/print_config.py',
         config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py'), '--cfg-options',
         'teacher_ckpt=/teachers/t/epoch_9.pth', 'data_root=/data/fm'],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    from mmengine.config import Config
    cfg = Config.fromstring(done.stdout, '.py')
    assert cfg.model.teacher.checkpoint == '/teachers/t/epoch_9.pth'
    assert cfg.val_dataloader.dataset.data_root == '/data/fm'
    assert cfg.test_dataloader.dataset.data_root == '/data/fm'


@pytest.mark.parametrize('pair,message', [
    ('teacher_ckpt', r"takes KEY=VALUE pairs, got 'teacher_ckpt'"),
    ("custom_hooks=[dict(type='TimedValidationHook')]",
     r'custom_hooks: a dict value cannot be given here .*custom_hooks.0.NAME=VALUE'),
])
def test_cfg_options_the_tools_cannot_read_are_argparse_errors(pair, message, capsys):
    """A pair without '=' raised a bare unpacking error and a dict value a RecursionError
    inside mmengine's parser; values that merely contain braces still pass."""
    import argparse

    from mmdfkd.apis.cli_types import ConfigOptionsAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    with pytest.raises(SystemExit):
        parser.parse_args(['--cfg-options', pair])
    assert re.search(message, capsys.readouterr().err)
    args = parser.parse_args(['--cfg-options', 'model.synthesizer.prompt_template=a_{}',
                              'custom_hooks.0.interval=5', 'custom_hooks=[]'])
    assert args.cfg_options == {'model.synthesizer.prompt_template': 'a_{}',
                                'custom_hooks.0.interval': 5, 'custom_hooks': []}


def test_no_config_of_mmpretrains_model_zoo_is_refused_by_the_key_check(teacher_ckpt):
    """A refused valid key blocks a run with no way around it, so the check must accept every
    config mmpretrain ships: keys popped before the class sees them (norm_cfg's
    requires_grad by mmcv's build_norm_layer, encoders' pretrained by multimodal models, a
    hook's priority by the runner, an optimizer wrapper's paramwise_cfg by its constructor).
    Typos are still refused next to those keys."""
    import mmpretrain

    from mmdfkd.apis.config_keys import check_config_keys, check_runner_config_keys
    from mmdfkd.registry import MODELS
    from mmdfkd.utils import load_referenced_config
    zoo = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
    checked, stale = 0, []
    for path in sorted(glob.glob(osp.join(zoo, '*', '*.py'))):
        try:
            cfg = load_referenced_config(path)
        except ValueError:
            continue  # a few zoo configs do not load in mmengine at all (e.g. mixed lazy bases)
        try:
            check_runner_config_keys(cfg)
        except ValueError as err:
            # The zoo's one stale name: mmpretrain 1.x calls its batch CutMix 'CutMix', so
            # these configs fail in mmpretrain's own build too; the check says so up front.
            assert "model.train_cfg.augments.type: 'BatchCutMix'" in str(err), path
            assert "Did you mean 'CutMix'" in str(err)
            stale.append(osp.basename(path))
        checked += 1
    assert checked > 400
    assert 0 < len(stale) < 5, stale
    with pytest.raises(ValueError, match=r"model\.backbone\.norm_cfg\.epss: BatchNorm2d takes "
                                         r"no argument 'epss' \(did you mean 'eps'\?\)"):
        check_config_keys(dict(type='ImageClassifier', backbone=dict(
            type='ResNet_CIFAR', depth=18,
            norm_cfg=dict(type='BN', requires_grad=True, epss=1e-3))), MODELS, 'model')
    # A data-free student's paramwise_cfg (read per entry by DataFreeOptimWrapperConstructor)
    # and a custom hook's priority pass the check.
    cfg = load_config(config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py'), cfg_options={
        'teacher_ckpt': teacher_ckpt, 'optim_wrapper.student.paramwise_cfg.norm_decay_mult': 0.0,
        'custom_hooks': [dict(type='SyntheticVisualizationHook', interval=5, priority='LOW')]})
    check_runner_config_keys(cfg)


@pytest.mark.parametrize('config,part,key,value', [
    ('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py', 'synthesizer',
     'lr', -1),
    ('fast_dfkd/fast_dfkd_priors_folded_lenet5bn_lenet5half_fmnist.py', 'synthesizer', 'lr_z',
     float('nan')),
    ('cpsc_dfkd/cpsc_dfkd_priors_refined_folded_lenet5bn_lenet5half_fmnist.py', 'synthesizer',
     'refine_lr', '0.1'),
    ('dipkd/dipkd_lenet5_lenet5_fmnist.py', 'contrast', 'image_lr', -1e-3),
])
def test_step_sizes_a_synthesizer_uses_itself_are_refused_with_their_key(config, part, key,
                                                                           value):
    """A synthesizer's own pixel / latent / guidance step sizes never reach optim_wrapper:
    torch said "Invalid learning rate: -1" at the first synthesis, naming no key."""
    from mmdfkd.registry import MODELS
    cfg = load_config(config_path(*config.split('/')))
    part_cfg = dict(cfg.model[part], **{key: value})
    with pytest.raises(ValueError, match=rf'model\.{part}\.{key} must be a number >= 0 '
                                         r'\(a step size'):
        MODELS.build(part_cfg)
    part_cfg[key] = 0  # 0 freezes what the step moves: an ablation, not an error
    MODELS.build(part_cfg)


@pytest.mark.parametrize('key,value', [
    ('model.synthesizer.bn.loss_weight', float('nan')),
    ('model.distill_loss.loss_weight', '1.0'),
])
def test_a_loss_weight_that_is_not_a_finite_number_is_refused_with_its_key(key, value):
    """A quoted or NaN loss weight built and failed (or turned every loss into NaN) only at
    the first iteration, naming no loss."""
    from mmdfkd.apis.config_keys import check_runner_config_keys
    cfg = load_config(config_path('deepinversion',
                                  'deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py'),
                      cfg_options={key: value})
    with pytest.raises(ValueError, match=rf'{re.escape(key)}: \w+Loss loss_weight must be a '
                                         r'finite number'):
        check_runner_config_keys(cfg)
    # 0 switches a term off and a negative weight turns it around: both are allowed.
    check_runner_config_keys(load_config(
        config_path('deepinversion', 'deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py'),
        cfg_options={key: 0.0}))
