"""Classifiers named by their config file (``dict(cfg_path=...)``), as mmrazor does."""
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import load_checkpoint

from mmdfkd.apis import build_runner, load_config
from mmdfkd.apis.export import export_student
from mmdfkd.registry import MODELS
from mmdfkd.utils import resolve_model_reference

from .conftest import ROOT, config_path, needs_fmnist, small_eval_options
from .runner_utils import last_checkpoint

ZOO_RESNET18 = 'mmpretrain::resnet/resnet18_8xb16_cifar10.py'


def test_a_zoo_reference_is_the_zoo_model_with_the_overrides_merged():
    resolved = resolve_model_reference(dict(
        cfg_path='mmpretrain::resnet/resnet50_8xb16_cifar100.py', pretrained=False,
        head=dict(num_classes=10), neck=dict(_delete_=True, type='GlobalAveragePooling',
                                             dim=2)))
    assert resolved['backbone'] == dict(type='ResNet_CIFAR', depth=50, num_stages=4,
                                        out_indices=(3, ), style='pytorch')
    # A nested override changes its key and keeps the rest of the sub-dict...
    assert resolved['head']['num_classes'] == 10 and resolved['head']['in_channels'] == 2048
    # ...and `_delete_` replaces it.
    assert resolved['neck'] == dict(type='GlobalAveragePooling', dim=2)
    model = MODELS.build(dict(cfg_path='mmpretrain::resnet/resnet50_8xb16_cifar100.py',
                              head=dict(num_classes=10)))
    assert model(torch.randn(2, 3, 32, 32), mode='tensor').shape == (2, 10)
    # Plain model dicts pass through untouched.
    plain = dict(type='ImageClassifier', backbone=dict(type='LeNet'))
    assert resolve_model_reference(plain) is plain


@pytest.mark.parametrize('reference,error,message', [
    (dict(cfg_path=ZOO_RESNET18, pretrained=True), ValueError,
     r'model\.student\.pretrained=True would download .* teacher_ckpt=PATH'),
    (dict(cfg_path=ZOO_RESNET18, type='ImageClassifier', backbone=dict(type='LeNet')),
     ValueError, r"both `cfg_path` and `type`.*student=dict\(_delete_=True, cfg_path="),
    (dict(cfg_path='mmpretrain::resnet/resnet18_cifar.py'), FileNotFoundError,
     r"model\.student\.cfg_path='mmpretrain::resnet/resnet18_cifar\.py' cannot be read"),
    (dict(cfg_path='teachers/lenet5bn_fmnist.py'), FileNotFoundError,
     r'A relative path is read from the working directory'),
    (dict(cfg_path=osp.join(ROOT, 'configs', '_base_', 'datasets', 'fmnist_bs128.py')),
     ValueError, r'has no `model` to use'),
    (dict(cfg_path=osp.join(ROOT, 'configs', 'dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')),
     ValueError, r'is a data-free config \(model\.type=DataFreeDistiller\); name the '
                 r'classifier config'),
])
def test_bad_references_are_refused_with_the_key_and_the_fix(reference, error, message):
    with pytest.raises(error, match=message):
        resolve_model_reference(reference, 'model.student')


def _reference_config(tmp_path, teacher: str, student: str) -> str:
    """A user's config: a shipped recipe whose teacher and student are named by file."""
    path = tmp_path / 'my_datafree.py'
    path.write_text(
        f"_base_ = ['{config_path('dfad', 'dfad_lenet5bn_lenet5half_fmnist.py')}']\n"
        f"model = dict(teacher=dict(_delete_=True, cfg_path='{teacher}'),\n"
        f"             student=dict(_delete_=True, cfg_path='{student}'))\n")
    return str(path)


def test_a_misspelt_override_under_a_reference_is_refused_with_its_path(teacher_ckpt, tmp_path):
    config = _reference_config(tmp_path, config_path('teachers', 'lenet5bn_fmnist.py'),
                               config_path('baselines', 'lenet5half_fmnist_realdata.py'))
    cfg = load_config(config, cfg_options={'teacher_ckpt': teacher_ckpt,
                                           'model.student.head.num_classs': 10},
                      work_dir=str(tmp_path / 'run'))
    with pytest.raises(ValueError, match=r"model\.student\.head\.num_classs: LinearClsHead "
                                         r"takes no argument 'num_classs' \(did you mean "
                                         r"'num_classes'"):
        build_runner(cfg)


def test_a_teacher_normalised_otherwise_than_the_test_split_is_refused(teacher_ckpt, tmp_path):
    teacher = tmp_path / 'my_teacher.py'
    teacher.write_text(f"_base_ = ['{config_path('teachers', 'lenet5bn_fmnist.py')}']\n"
                       "data_preprocessor = dict(mean=[0.0], std=[255.0])\n")
    config = _reference_config(tmp_path, str(teacher),
                               config_path('baselines', 'lenet5half_fmnist_realdata.py'))
    cfg = load_config(config, cfg_options={'teacher_ckpt': teacher_ckpt},
                      work_dir=str(tmp_path / 'run'))
    with pytest.raises(ValueError, match=r"model\.teacher\.cfg_path='.*my_teacher\.py' "
                                         r'normalises its inputs with mean \[0\.0\] and std '
                                         r'\[255\.0\], but model\.data_preprocessor .* mean '
                                         r'\[72\.94\] and std \[90\.0\]'):
        build_runner(cfg)


@needs_fmnist
def test_a_run_with_teacher_and_student_named_by_file_trains_and_exports(teacher_ckpt, tmp_path):
    config = _reference_config(tmp_path, config_path('teachers', 'lenet5bn_fmnist.py'),
                               config_path('baselines', 'lenet5half_fmnist_realdata.py'))
    opts = dict(small_eval_options(), teacher_ckpt=teacher_ckpt)
    opts.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                 'default_hooks.checkpoint.interval': 2, 'model.synthesizer.batch_size': 16,
                 'model.student_batch_size': 16, 'model.student_steps': 1})
    cfg = load_config(config, cfg_options=opts, work_dir=str(tmp_path / 'run'))
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:12]}'
    runner = build_runner(cfg)
    runner.train()
    # The teacher is the file's LeNet-5-BN with the checkpoint's weights.
    state = torch.load(teacher_ckpt, weights_only=False)['state_dict']
    torch.testing.assert_close(
        runner.model.teacher.state_dict()['backbone.conv1.0.weight'].cpu(),
        state['backbone.conv1.0.weight'])
    # ...and the student the real-data baseline's LeNet-5-half (42 features into its head).
    assert runner.model.student.head.fc.in_features == 42

    # The exported config spells the student out: mmpretrain's registry, which builds it,
    # does not resolve references.
    ckpt, student_cfg = export_student(config, last_checkpoint(str(tmp_path / 'run')),
                                       str(tmp_path / 'export'))
    exported = Config.fromfile(student_cfg)
    assert 'cfg_path' not in exported.model and exported.model.type == 'ImageClassifier'
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    init_default_scope('mmpretrain')
    student = MMPRETRAIN_MODELS.build(exported.model)
    load_checkpoint(student, ckpt, strict=True)
    x = torch.randn(3, 1, 32, 32)
    torch.testing.assert_close(student.eval()(x, mode='tensor'),
                               runner.model.student.eval()(x, mode='tensor'))


def test_print_config_shows_what_a_reference_stands_for():
    import subprocess
    import sys
    done = subprocess.run(
        [sys.executable, f'{ROOT}/tools/misc/print_config.py',
         config_path('deepinversion', 'deepinversion_resnet34_mobilenetv3small_cifar10.py')],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    cfg = Config.fromstring(done.stdout, '.py')  # still a config: the additions are comments
    assert cfg.model.student == dict(
        cfg_path='mmpretrain::mobilenet_v3/mobilenet-v3-small_8xb16_cifar10.py')
    student_part = done.stdout.split("# model.student: cfg_path='mmpretrain::mobilenet_v3/")[1]
    assert "#     backbone=dict(arch='small', type='MobileNetV3')," in student_part
    assert "# model.teacher: cfg_path='mmpretrain::resnet/resnet34_8xb16_cifar10.py'" in (
        done.stdout)
