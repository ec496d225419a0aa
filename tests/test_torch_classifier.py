"""Plain PyTorch classifiers (torchvision here) as teachers and students: TorchClassifier."""
import glob
import os.path as osp
import uuid

import pytest
import torch
import torchvision

from mmdfkd.apis import build_runner, load_config
from mmdfkd.apis.export import export_student
from mmdfkd.apis.smoke import one_iteration_options
from mmdfkd.models.teachers.sources import load_classifier_weights
from mmdfkd.models.utils.recorder import stage_names
from mmdfkd.registry import MODELS
from mmpretrain.structures import DataSample

from .conftest import config_path

RESNET18 = dict(type='TorchClassifier', model='torchvision.models:resnet18',
                model_kwargs=dict(num_classes=10))


def trained_like_resnet18(path: str) -> torchvision.models.ResNet:
    """A torchvision ResNet-18 with moved BN statistics, saved as a plain state dict."""
    torch.manual_seed(0)
    plain = torchvision.models.resnet18(num_classes=10).train()
    with torch.no_grad():
        for _ in range(2):
            plain(torch.randn(8, 3, 32, 32) * 0.7 + 0.2)
    torch.save(plain.state_dict(), path)
    return plain.eval()


def torchvision_pair_config(tmp_path) -> str:
    """DeepInversion's CIFAR-10 recipe with a torchvision ResNet-18 teacher and a torchvision
    MobileNetV3-small student, as a user writes it."""
    config = tmp_path / 'deepinversion_torchvision_cifar10.py'
    recipe = config_path('deepinversion', 'deepinversion_resnet34_resnet18_cifar10.py')
    config.write_text(
        f"_base_ = ['{recipe}']\n"
        "model = dict(\n"
        "    teacher=dict(_delete_=True, type='TorchClassifier',\n"
        "                 model='torchvision.models:resnet18',\n"
        "                 model_kwargs=dict(num_classes=10)),\n"
        "    student=dict(_delete_=True, type='TorchClassifier',\n"
        "                 model='torchvision.models:mobilenet_v3_small',\n"
        "                 model_kwargs=dict(num_classes=10)))\n")
    return str(config)


def test_a_plain_torchvision_checkpoint_is_a_teacher_that_answers_like_the_model(tmp_path):
    plain = trained_like_resnet18(str(tmp_path / 'resnet18.pth'))
    model = load_classifier_weights(MODELS.build(RESNET18), str(tmp_path / 'resnet18.pth'))
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    # the wrapper's keys are the plain model's, so checkpoints go both ways
    assert list(model.state_dict()) == list(plain.state_dict())
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        expected = plain(images)
        torch.testing.assert_close(model(images, mode='tensor'), expected, rtol=0, atol=0)
        logits, feats = model.logits_and_features(images)
        pooled = torch.flatten(plain.avgpool(plain.layer4(plain.layer3(plain.layer2(plain.layer1(
            plain.maxpool(plain.relu(plain.bn1(plain.conv1(images))))))))), 1)
    assert model.feature_layer == 'fc' and model.num_classes == 10
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    torch.testing.assert_close(feats, pooled)  # the penultimate features: the fc's input
    # mmpretrain's other modes, for training or testing the model on real data
    samples = [DataSample().set_gt_label(label) for label in (0, 1, 2, 3)]
    loss = model(images, samples, mode='loss')['loss']
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(
        expected, torch.tensor([0, 1, 2, 3])))
    predicted = model(images, mode='predict')
    assert [int(s.pred_label) for s in predicted] == expected.argmax(1).tolist()
    torch.testing.assert_close(torch.stack([s.pred_score for s in predicted]),
                               expected.softmax(1))
    # configs pick stages of the wrapped model (ZSKT, CMI) by these names
    assert {'model.layer1', 'model.layer4', 'model.layer1.0'} <= set(stage_names(model))


def test_bad_torch_classifier_settings_name_the_fix():
    with pytest.raises(ValueError, match=r"TorchClassifier model must name a callable as "
                                         r"'package.module:attribute' "
                                         r"\(e.g. 'torchvision.models:resnet18'\)"):
        MODELS.build(dict(RESNET18, model='torchvision.models.resnet18'))
    with pytest.raises(ValueError, match="'torchvision.models:resnet1000' cannot be imported"):
        MODELS.build(dict(RESNET18, model='torchvision.models:resnet1000'))
    with pytest.raises(ValueError, match=r"model_kwargs \{'num_class': 10\} do not fit "
                                         r"'torchvision.models:resnet18': .*num_class"):
        MODELS.build(dict(RESNET18, model_kwargs=dict(num_class=10)))
    with pytest.raises(ValueError, match=r"feature_layer 'head' is not a module of the model; "
                                         r"its linear layers are \['fc'\]"):
        MODELS.build(dict(RESNET18, feature_layer='head'))


def test_torchvision_models_distil_and_the_student_exports_back_to_torchvision(tmp_path):
    """DeepInversion's CIFAR-10 recipe with a torchvision ResNet-18 teacher and a torchvision
    MobileNetV3-small student: one iteration, then the exported student.pth loads into the
    plain torchvision model and answers as the distilled student does."""
    trained_like_resnet18(str(tmp_path / 'resnet18.pth'))
    config = torchvision_pair_config(tmp_path)
    options = one_iteration_options(config, str(tmp_path / 'resnet18.pth'))
    # the per-class grid reads the class count from the wrapper (it has no mmpretrain head)
    options['custom_hooks'] = [dict(type='SyntheticVisualizationHook', interval=1)]
    cfg = load_config(config, cfg_options=options, work_dir=str(tmp_path / 'run'))
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:12]}'
    runner = build_runner(cfg)
    runner.train()
    assert len(runner.model.synthesizer.pool) == 4
    grids = tmp_path / 'run' / '*' / 'vis_data' / 'vis_image' / 'synthetic_per_class*'
    assert glob.glob(str(grids))

    ckpt, _ = export_student(config, osp.join(str(tmp_path / 'run'), 'iter_1.pth'),
                             str(tmp_path / 'export'), options)
    plain_student = torchvision.models.mobilenet_v3_small(num_classes=10).eval()
    plain_student.load_state_dict(torch.load(ckpt, weights_only=False)['state_dict'])
    images = torch.randn(2, 3, 32, 32)
    student = runner.model.student.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain_student(images), student(images, mode='tensor'))


def test_a_local_hard_label_torchvision_teacher_gives_labels_only(tmp_path):
    """DIP-KD's setting with a plain checkpoint: HardLabelTeacher over a TorchClassifier
    answers the plain model's top-1 and counts the queries."""
    from mmdfkd.models.teachers import HardLabelTeacher
    plain = trained_like_resnet18(str(tmp_path / 'resnet18.pth'))
    teacher = HardLabelTeacher(num_classes=10, model=RESNET18,
                               checkpoint=str(tmp_path / 'resnet18.pth'))
    images = torch.randn(5, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    labels = teacher(images)
    with torch.no_grad():
        assert torch.equal(labels, plain(images).argmax(1))
    assert labels.dtype == torch.long and teacher.queries == 5
    assert not list(teacher.parameters())  # the model stays behind the wrapper


def test_a_served_torchvision_teacher_answers_like_the_plain_model(tmp_path):
    """tools/serve_teacher.py serves a TorchClassifier config (its class count read from the
    built model), and a hard-label client buys the plain model's top-1 labels."""
    from mmdfkd.models.teachers import HardLabelTeacher

    from .test_remote_teacher import Server, _free_port
    plain = trained_like_resnet18(str(tmp_path / 'resnet18.pth'))
    config = tmp_path / 'resnet18_teacher.py'
    config.write_text("model = dict(type='TorchClassifier', model='torchvision.models:resnet18',"
                      " model_kwargs=dict(num_classes=10))\n")
    server = Server(str(tmp_path / 'resnet18.pth'), _free_port(), config=str(config)).start()
    try:
        assert server.health()['num_classes'] == 10
        teacher = HardLabelTeacher(num_classes=10, url=server.url)
        images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = plain(images).argmax(1)
        assert torch.equal(teacher.query_labels(images), expected)
        assert teacher.queries == 6
    finally:
        server.stop()


def test_get_flops_counts_torchvision_teacher_and_student(tmp_path):
    from .test_get_flops import _get_flops
    config = torchvision_pair_config(tmp_path)
    proc, counts = _get_flops(tmp_path, config)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for role, plain in (('teacher', torchvision.models.resnet18(num_classes=10)),
                        ('student', torchvision.models.mobilenet_v3_small(num_classes=10))):
        assert counts[role]['params'] == sum(p.numel() for p in plain.parameters())
    assert counts['student']['flops'] < counts['teacher']['flops'] / 10
