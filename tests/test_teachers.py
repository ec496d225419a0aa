"""Teacher wrappers: access levels, no leakage from black boxes, query accounting."""
import numpy as np
import pytest
import torch

from mmdfkd.models.teachers import (HardLabelTeacher, QueryBudgetExceeded, SoftLabelTeacher,
                                    TeacherAccessError, WhiteBoxTeacher,
                                    load_classifier_weights)
from mmdfkd.models.teachers.sources import teacher_hint
from mmdfkd.registry import MODELS

from .conftest import LENET5BN, LENET5HALF, config_path


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def _reference_logits(teacher_ckpt: str, images: torch.Tensor) -> torch.Tensor:
    model = MODELS.build(LENET5BN)
    model.load_state_dict(torch.load(teacher_ckpt, weights_only=False)['state_dict'])
    with torch.no_grad():
        return model.eval()(images, mode='tensor')


def _all_tensors(obj):
    if torch.is_tensor(obj):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _all_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _all_tensors(v)


def test_hard_label_teacher_leaks_nothing_but_the_top1(teacher_ckpt):
    teacher = HardLabelTeacher(num_classes=10, model=LENET5BN, checkpoint=teacher_ckpt)
    images = _images(16).requires_grad_(True)
    hooked = []
    teacher.register_forward_hook(lambda m, i, o: hooked.append(o))
    labels = teacher(images)
    # The answer: integer labels, no autograd history, equal to the model's argmax.
    assert labels.dtype == torch.long and labels.shape == (16, )
    assert labels.grad_fn is None and not labels.requires_grad
    assert torch.equal(labels, _reference_logits(teacher_ckpt, images.detach()).argmax(1))
    # No gradient path back to the images.
    with pytest.raises(RuntimeError):
        torch.autograd.grad(labels.float().sum(), images)
    assert images.grad is None
    # No weights, submodules, hook points or float tensors reachable through the module API.
    assert list(teacher.parameters()) == []
    assert [n for n, _ in teacher.named_modules()] == ['']
    state = teacher.state_dict()
    assert set(state) == {'queries', 'cache_hits', '_extra_state'}
    assert not any(t.is_floating_point() for t in _all_tensors(state))
    # Hooks on the wrapper see exactly what the caller sees.
    assert len(hooked) == 1 and torch.equal(hooked[0], labels)
    assert 'conv' not in repr(teacher).lower()
    # Probabilities are refused.
    with pytest.raises(TeacherAccessError, match='needs a soft-label teacher; got hard-label'):
        teacher.query_probs(images)


def test_soft_label_teacher_gives_probabilities_without_autograd(teacher_ckpt):
    teacher = SoftLabelTeacher(num_classes=10, model=LENET5BN, checkpoint=teacher_ckpt)
    images = _images(8).requires_grad_(True)
    probs = teacher(images)
    assert probs.shape == (8, 10) and probs.grad_fn is None
    assert torch.allclose(probs.sum(1), torch.ones(8), atol=1e-5)
    ref = _reference_logits(teacher_ckpt, images.detach()).softmax(1)
    assert torch.allclose(probs, ref, atol=1e-6)
    assert list(teacher.parameters()) == []
    assert torch.equal(teacher.query_labels(images), ref.argmax(1))


def test_budget_and_cache_count_every_image_exactly_once(teacher_ckpt):
    teacher = HardLabelTeacher(num_classes=10, model=LENET5BN, checkpoint=teacher_ckpt,
                               query_budget=10)
    a, b = _images(6, seed=1), _images(5, seed=2)
    first = teacher.query_labels(a)
    assert int(teacher.queries) == 6 and int(teacher.cache_hits) == 0
    assert torch.equal(teacher.query_labels(a), first)  # served from the cache
    assert int(teacher.queries) == 6 and int(teacher.cache_hits) == 6
    with pytest.raises(QueryBudgetExceeded, match='6 of 10 images spent, this batch needs 5'):
        teacher.query_labels(b)
    assert int(teacher.queries) == 6, 'a refused batch must not be counted'
    # Duplicates within a batch are bought once; cached images cost nothing.
    teacher.query_labels(torch.cat([b[:4], b[:4], a]))
    assert int(teacher.queries) == 10 and int(teacher.cache_hits) == 6 + 4 + 6
    assert teacher.remaining_budget == 0

    # The count, hits and cache survive a checkpoint round trip.
    restored = HardLabelTeacher(num_classes=10, model=LENET5BN, checkpoint=teacher_ckpt,
                                query_budget=10)
    restored.load_state_dict(teacher.state_dict())
    assert int(restored.queries) == 10 and int(restored.cache_hits) == 16
    assert torch.equal(restored.query_labels(a), first)  # no budget left, cache answers
    assert int(restored.queries) == 10


def _threshold_labels(batch: np.ndarray) -> np.ndarray:
    """A plain numpy 'model': class = bucket of the image mean."""
    return np.clip(((batch.mean(axis=(1, 2, 3)) + 1) * 5).astype(int), 0, 9)


def test_callable_teachers_sklearn_and_import_path():
    from sklearn.linear_model import LogisticRegression
    train = _images(200, seed=3)
    targets = np.arange(200) % 3
    clf = LogisticRegression(max_iter=200).fit(train.flatten(1).numpy(), targets)
    teacher = HardLabelTeacher(num_classes=10,
                               callable=lambda x: clf.predict(x.reshape(len(x), -1)))
    test = _images(20, seed=4)
    assert torch.equal(teacher(test),
                       torch.as_tensor(clf.predict(test.flatten(1).numpy())).long())
    by_path = HardLabelTeacher(num_classes=10, callable='tests.test_teachers:_threshold_labels')
    assert torch.equal(by_path(test), torch.as_tensor(_threshold_labels(test.numpy())))
    # scikit-learn probabilities through the soft-label wrapper
    soft = SoftLabelTeacher(num_classes=3, callable=lambda x: clf.predict_proba(
        x.reshape(len(x), -1)))
    assert soft(test).shape == (20, 3)


def test_a_callable_answering_with_scores_gives_its_top1_to_a_hard_label_teacher():
    """predict_proba or an ONNX model's logits handed to HardLabelTeacher: the scores were cast
    to integers first, so every image got label 0 without an error."""
    scores = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1], [-2.0, -1.0, 3.0]], np.float32)
    teacher = HardLabelTeacher(num_classes=3, callable=lambda x: scores[:len(x)])
    assert teacher(_images(3)).tolist() == [1, 0, 2]


def test_onnx_teacher_files_are_checked_before_use(tmp_path):
    from mmdfkd.models.teachers import OnnxClassifier
    with pytest.raises(FileNotFoundError, match="'.*missing.onnx' does not exist"):
        HardLabelTeacher(num_classes=10, onnx=str(tmp_path / 'missing.onnx'))
    with pytest.raises(ValueError, match="outputs must be 'logits' or 'probs'"):
        OnnxClassifier(str(tmp_path / 'missing.onnx'), outputs='scores')
    with pytest.raises(ValueError, match=r"exactly one of .*`onnx` \(an \.onnx file\); got "
                                         r"\['model', 'onnx'\]"):
        HardLabelTeacher(num_classes=10, model=LENET5BN, onnx=str(tmp_path / 'x.onnx'))


def test_bad_teacher_configs_and_answers_are_clear():
    with pytest.raises(ValueError, match='exactly one of `model`'):
        HardLabelTeacher(num_classes=10)
    # The black-box configs inherit a local `model`; adding `url` names what to clear.
    with pytest.raises(ValueError, match=r"got \['model', 'url'\]; keep one and set the others "
                                         r'to None, e.g. to keep `url`: --cfg-options '
                                         r'model.teacher.model=None '
                                         r'model.teacher.checkpoint=None$'):
        HardLabelTeacher(num_classes=10, model=LENET5BN, url='http://127.0.0.1:9')
    with pytest.raises(ValueError, match='cannot be imported'):
        HardLabelTeacher(num_classes=10, callable='no_such_module:f')
    with pytest.raises(ValueError, match='query_budget'):
        HardLabelTeacher(num_classes=10, callable=_threshold_labels, query_budget=0)
    short = HardLabelTeacher(num_classes=10, callable=lambda x: [0])
    with pytest.raises(ValueError, match='expected 4 integer class labels'):
        short(_images(4))
    out_of_range = HardLabelTeacher(num_classes=3, callable=_threshold_labels)
    with pytest.raises(ValueError, match='outside'):
        out_of_range(torch.full((4, 1, 32, 32), 2.0))


def test_a_checkpoint_of_another_architecture_is_named_not_dumped(tmp_path):
    """A LeNet-5 (no BN) or half-width checkpoint given to a LeNet-5-BN teacher names the
    differing keys, the run that saved it and the fix; a matching one loads exactly."""
    plain = dict(LENET5BN, backbone=dict(LENET5BN['backbone'], with_bn=False))
    for cfg, name in ((plain, 'lenet5'), (LENET5HALF, 'half'), (LENET5BN, 'bn')):
        torch.save({'state_dict': MODELS.build(cfg).state_dict(),
                    'meta': {'experiment_name': f'{name}_run'}}, tmp_path / f'{name}.pth')
    with pytest.raises(ValueError, match="saved by the run 'lenet5_run'") as plain_err:
        load_classifier_weights(MODELS.build(LENET5BN), str(tmp_path / 'lenet5.pth'))
    message = str(plain_err.value)
    assert 'missing backbone.conv1.1.bias' in message
    assert 'not in the model backbone.conv1.0.bias, backbone.conv2.0.bias.' in message
    assert 'configs/teachers/lenet5bn_fmnist.py' in message
    with pytest.raises(ValueError, match=r'other shapes .*checkpoint \(3, 1, 5, 5\), '
                                         r'model \(6, 1, 5, 5\)'):
        load_classifier_weights(MODELS.build(LENET5BN), str(tmp_path / 'half.pth'))
    loaded = load_classifier_weights(MODELS.build(LENET5BN), str(tmp_path / 'bn.pth'))
    saved = torch.load(tmp_path / 'bn.pth', weights_only=False)['state_dict']
    assert all(torch.equal(v, saved[k]) for k, v in loaded.state_dict().items())
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())


def test_a_missing_teacher_names_the_recipe_that_trains_it():
    """The hint follows the configs' work_dirs/teachers/<recipe>/ convention (a CIFAR config
    is not told to train the Fashion-MNIST teacher), then the teacher's architecture."""
    with pytest.raises(FileNotFoundError, match=r'python tools/train.py '
                                                r'configs/teachers/wrn40_2_cifar100.py '
                                                r'--work-dir work_dirs/teachers/wrn40_2_cifar100'):
        load_classifier_weights(MODELS.build(LENET5BN),
                                'work_dirs/teachers/wrn40_2_cifar100/epoch_200.pth')
    # Elsewhere, the recipe that builds the teacher's architecture (a CIFAR config given
    # `teacher_ckpt=/tmp/...` used to be told to train the Fashion-MNIST LeNet-5-BN) ...
    from mmengine.config import Config
    resnet34 = MODELS.build(
        Config.fromfile(config_path('teachers', 'resnet34_cifar10.py')).model)
    for unknown in ('/tmp/my_teacher/epoch_3.pth', 'model.pth', None):
        assert 'configs/teachers/resnet34_cifar10.py' in teacher_hint(unknown, resnet34)
        assert 'configs/teachers/lenet5bn_fmnist.py' in teacher_hint(unknown,
                                                                    MODELS.build(LENET5BN))
    with pytest.raises(ValueError, match='is not set: .*lenet5bn_fmnist.py'):
        load_classifier_weights(MODELS.build(LENET5BN), None)
    with pytest.raises(FileNotFoundError, match='configs/teachers/resnet34_cifar10.py'):
        load_classifier_weights(resnet34, '/tmp/nowhere/epoch_200.pth')
    # ... and for an architecture no recipe builds (a model-zoo teacher), how to train one.
    from mmdfkd.utils import resolve_model_reference
    zoo = MODELS.build(resolve_model_reference(
        dict(cfg_path='mmpretrain::mobilenet_v3/mobilenet-v3-small_8xb16_cifar10.py')))
    hint = teacher_hint('/tmp/nowhere/epoch_3.pth', zoo)
    assert 'python tools/train.py TEACHER_CONFIG' in hint and 'resnet34_cifar10' in hint
    assert 'configs/teachers/' in hint and 'train one with' not in hint


def test_a_teacher_work_dir_given_as_teacher_ckpt_names_its_checkpoint(tmp_path,
                                                                        teacher_ckpt):
    """A teacher's work dir passed as teacher_ckpt used to be reported as not existing."""
    run = tmp_path / 'lenet5_fmnist'
    run.mkdir()
    with pytest.raises(IsADirectoryError, match=r'is a folder; pass a checkpoint file, '
                                                r'epoch_N.pth .*configs/teachers/lenet5_fmnist.py'):
        load_classifier_weights(MODELS.build(LENET5BN), str(run))
    (run / 'last_checkpoint').write_text(teacher_ckpt)
    with pytest.raises(IsADirectoryError, match=rf'e.g. its last one: teacher_ckpt={teacher_ckpt}'):
        load_classifier_weights(MODELS.build(LENET5BN), str(run))


def test_a_relative_teacher_ckpt_read_from_another_folder_names_where_it_is(
        tmp_path, monkeypatch, teacher_ckpt):
    """The configs' default teacher_ckpt is relative to the repository: started from another
    folder, the run was told to train a teacher that exists."""
    import shutil

    from mmdfkd.utils import repo_paths
    root, elsewhere = tmp_path / 'repo', tmp_path / 'elsewhere'
    (root / 'work_dirs' / 'teachers' / 'lenet5bn_fmnist').mkdir(parents=True)
    elsewhere.mkdir()
    shutil.copy(teacher_ckpt, root / 'work_dirs' / 'teachers' / 'lenet5bn_fmnist' / 'epoch_15.pth')
    monkeypatch.setattr(repo_paths, 'REPO_ROOT', str(root))
    monkeypatch.chdir(elsewhere)
    relative = 'work_dirs/teachers/lenet5bn_fmnist/epoch_15.pth'
    with pytest.raises(FileNotFoundError,
                       match=rf"does not exist in the current directory \({elsewhere}\).*"
                             rf"pass `--cfg-options teacher_ckpt={root}/{relative}` or run "
                             rf"from {root}\."):
        load_classifier_weights(MODELS.build(LENET5BN), relative)
    # From the repository itself, or for a file missing there too, the recipe hint as before.
    monkeypatch.chdir(root)
    assert not load_classifier_weights(MODELS.build(LENET5BN), relative).training
    monkeypatch.chdir(elsewhere)
    with pytest.raises(FileNotFoundError, match=r"epoch_16.pth' does not exist: train one"):
        load_classifier_weights(MODELS.build(LENET5BN), relative.replace('15', '16'))


def test_methods_refuse_teachers_with_too_little_access(teacher_ckpt):
    hard = dict(type='HardLabelTeacher', num_classes=10, model=LENET5BN,
                checkpoint=teacher_ckpt)
    model = dict(type='DataFreeDistiller', teacher=hard, student=LENET5HALF,
                 teacher_ckpt=None, distill_loss=dict(type='KLDivergenceLoss'),
                 synthesizer=dict(type='InversionSynthesizer', image_shape=(1, 32, 32),
                                  num_classes=10, batch_size=4, iterations=1))
    with pytest.raises(TeacherAccessError,
                       match='DeepInversion needs a white-box teacher; got hard-label'):
        MODELS.build(model)
    soft = dict(hard, type='SoftLabelTeacher')
    with pytest.raises(TeacherAccessError, match='needs a white-box teacher; got soft-label'):
        MODELS.build(dict(model, teacher=soft))
    # The white-box wrapper gives the model itself.
    white = dict(type='WhiteBoxTeacher', num_classes=10, model=LENET5BN,
                 checkpoint=teacher_ckpt)
    distiller = MODELS.build(dict(model, teacher=white))
    images = _images(4)
    with torch.no_grad():
        assert torch.allclose(distiller.teacher(images, mode='tensor'),
                              _reference_logits(teacher_ckpt, images))
    assert isinstance(MODELS.build(white), WhiteBoxTeacher)
