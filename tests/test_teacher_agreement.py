"""TeacherAgreement: validation on unlabelled images through the teacher's top-1 classes."""
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmdfkd.apis import build_runner
from mmdfkd.apis.export import export_student
from mmdfkd.datasets import FashionMNISTIdx
from mmdfkd.evaluation import TEACHER_LABEL_FIELD, TeacherAgreement

from .conftest import FMNIST_ROOT, ROOT, config_path, needs_fmnist, small_eval_options
from .runner_utils import datafree_cfg, last_checkpoint
from .test_dipkd import CONFIG as DIPKD_CONFIG
from .test_dipkd import _small
from .test_dipkd import datafree_cfg as dipkd_cfg
from .test_dipkd import lenet5_ckpt  # noqa: F401  (fixture)


def _sample(student: int, teacher: int | None) -> dict:
    sample = DataSample().set_pred_label(torch.tensor([student]))
    if teacher is not None:
        sample.set_field(torch.tensor(teacher), TEACHER_LABEL_FIELD)
    return sample.to_dict()


def test_agreement_counts_matching_top1_classes():
    metric = TeacherAgreement(num_classes=3, per_class=True)
    # (student, teacher): teacher class 0 agreed 2 of 2, class 1 agreed 1 of 3, class 2 unseen
    metric.process(None, [_sample(0, 0), _sample(0, 0), _sample(1, 1), _sample(2, 1),
                          _sample(0, 1)])
    result = metric.evaluate(5)
    assert result['agreement/top1'] == pytest.approx(60.0)
    per_class = result['agreement/per_class']
    assert per_class[:2] == pytest.approx([100.0, 100 / 3]) and np.isnan(per_class[2])


def test_agreement_without_teacher_labels_names_the_switch():
    metric = TeacherAgreement()
    with pytest.raises(ValueError, match=r'model\.eval_teacher_agreement=True'):
        metric.process(None, [_sample(0, None)])


@needs_fmnist
def test_validation_on_an_unlabelled_folder(teacher_ckpt, tmp_path):
    """A folder of plain image files, no labels, no class sub-folders: validation reports the
    student's agreement with the teacher, equal to the two models' own top-1 classes, and the
    images count as teacher queries."""
    folder = tmp_path / 'unlabelled'
    folder.mkdir()
    test_split = FashionMNISTIdx(data_root=FMNIST_ROOT, split='test', pipeline=[])
    raw = [np.asarray(test_split[i]['img']) for i in range(40)]
    for i, image in enumerate(raw):
        cv2.imwrite(str(folder / f'garment_{i:02d}.png'), image)
    cfg = datafree_cfg('deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
                       str(tmp_path / 'run'), teacher_ckpt, max_iters=1,
                       **{'model.eval_teacher_agreement': True})
    cfg.val_dataloader = dict(
        batch_size=16, num_workers=0, persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(type='CustomDataset', data_root=str(folder), with_label=False,
                     pipeline=[dict(type='LoadImageFromFile', color_type='grayscale'),
                               dict(type='CenterPad', size=32), dict(type='PackInputs')]))
    cfg.val_evaluator = dict(type='TeacherAgreement')
    runner = build_runner(cfg)
    runner.train()
    model = runner.model
    queries = int(model.teacher_queries)
    metrics = runner.val_loop.run()
    assert int(model.teacher_queries) == queries + 40

    # the same images through the models directly: zero-padded to 32 px, normalised
    pixels = torch.tensor(np.stack(raw), dtype=torch.float)[:, None]
    images = (torch.nn.functional.pad(pixels, (2, 2, 2, 2)) - 72.94) / 90.0
    with torch.no_grad():
        student = model.student(images, mode='tensor').argmax(1)
        teacher = model.teacher(images, mode='tensor').argmax(1)
    expected = (student == teacher).float().mean().item() * 100
    assert metrics['agreement/top1'] == pytest.approx(expected)
    assert 0 < expected < 100  # a random teacher and a barely trained student: a real test


@needs_fmnist
def test_black_box_agreement_buys_each_image_once(lenet5_ckpt, tmp_path):  # noqa: F811
    """DIP-KD with a hard-label teacher: validation buys each image's label once (counted,
    within the budget, cached for the next validation) and reports the agreement next to the
    accuracy."""
    opts = _small(budget=100, **{'model.eval_teacher_agreement': True,
                                 'val_dataloader.dataset.indices': 40})
    cfg = dipkd_cfg(DIPKD_CONFIG, str(tmp_path), lenet5_ckpt, max_iters=8, **opts)
    cfg.val_evaluator = [dict(type='Accuracy', topk=1), dict(type='TeacherAgreement')]
    runner = build_runner(cfg)
    runner.train()  # 60 priors bought, then one validation on 40 test images
    teacher = runner.model.teacher
    assert int(teacher.queries) == 100
    hits = int(teacher.cache_hits)
    metrics = runner.val_loop.run()
    assert int(teacher.queries) == 100 and int(teacher.cache_hits) == hits + 40
    assert 'accuracy/top1' in metrics

    images = torch.cat([runner.model.data_preprocessor(batch)['inputs']
                        for batch in runner.val_dataloader])
    with torch.no_grad():
        student = runner.model.student(images, mode='tensor').argmax(1)
    expected = (student == teacher.query_labels(images)).float().mean().item() * 100
    assert metrics['agreement/top1'] == pytest.approx(expected)


@needs_fmnist
def test_exported_student_keeps_only_the_metrics_it_can_compute(teacher_ckpt, tmp_path):
    """The exported student has no teacher: TeacherAgreement is dropped from its test split,
    and a run tested on unlabelled images only exports the model alone."""
    run = str(tmp_path / 'run')
    runner = build_runner(datafree_cfg(
        'deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py', run,
        teacher_ckpt, max_iters=1))
    runner.train()
    ckpt = last_checkpoint(run)
    base = config_path('deepinversion',
                       'deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py')
    both = tmp_path / 'both.py'
    both.write_text(f"_base_ = [{base!r}]\n"
                    "test_evaluator = [dict(type='Accuracy', topk=1),"
                    " dict(type='TeacherAgreement')]\n"
                    "model = dict(eval_teacher_agreement=True)\n")
    only = tmp_path / 'only.py'
    only.write_text(f"_base_ = [{base!r}]\n"
                    "test_evaluator = dict(_delete_=True, type='TeacherAgreement')\n"
                    "model = dict(eval_teacher_agreement=True)\n")
    options = {'teacher_ckpt': teacher_ckpt}
    _, both_cfg = export_student(str(both), ckpt, str(tmp_path / 'e1'), options)
    assert Config.fromfile(both_cfg).test_evaluator == dict(type='Accuracy', topk=1)
    _, only_cfg = export_student(str(only), ckpt, str(tmp_path / 'e2'), options)
    exported = Config.fromfile(only_cfg)
    assert 'test_evaluator' not in exported and 'test_dataloader' not in exported


@needs_fmnist
def test_test_tool_reports_agreement_next_to_accuracy(teacher_ckpt, tmp_path):
    """tools/test.py --agreement: accuracy and agreement (overall and per teacher class) in
    the JSON it writes; a teacher config, which has no student, is refused by name."""
    config = 'deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py'
    run = str(tmp_path / 'run')
    build_runner(datafree_cfg(config, run, teacher_ckpt, max_iters=1)).train()
    options = [f'{k}={v}' for k, v in small_eval_options(100).items()]
    done = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'), config_path(*config.split('/')),
         last_checkpoint(run), '--agreement', '--out', str(tmp_path / 'm.json'),
         '--work-dir', str(tmp_path / 'w'), '--cfg-options', f'teacher_ckpt={teacher_ckpt}',
         *options], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / 'm.json').read_text())
    assert 0 <= metrics['accuracy/top1'] <= 100 and 0 <= metrics['agreement/top1'] <= 100
    assert len(metrics['agreement/per_class']) == 10

    refused = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'test.py'),
         config_path('teachers', 'lenet5bn_fmnist.py'), teacher_ckpt, '--agreement'],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert refused.returncode != 0 and 'has no student' in refused.stderr
