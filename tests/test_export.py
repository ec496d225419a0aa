import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint

from mmdfkd.apis.export import export_student
from mmdfkd.registry import MODELS

from .conftest import config_path, needs_fmnist
from .runner_utils import last_checkpoint, run_datafree

CONFIG = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'


@needs_fmnist
def test_exported_student_is_a_plain_mmpretrain_model(teacher_ckpt, tmp_path):
    runner = run_datafree(CONFIG, str(tmp_path / 'run'), teacher_ckpt, max_iters=1)
    ckpt, cfg_path = export_student(config_path(*CONFIG.split('/')),
                                    last_checkpoint(str(tmp_path / 'run')),
                                    str(tmp_path / 'export'))
    state = torch.load(ckpt, weights_only=False)['state_dict']
    assert state and not any(k.startswith(('teacher', 'synthesizer', 'student.')) for k in state)
    # Given back to tools/test.py with the data-free config, it is recognised as an export.
    from mmdfkd.engine.runner.checkpoint_loader import check_checkpoint_fits
    with pytest.raises(ValueError, match=r'holds the student alone .*student_config.py'):
        check_checkpoint_fits(runner.model, ckpt, 'tools/test.py')

    cfg = Config.fromfile(cfg_path)
    assert cfg.default_scope == 'mmpretrain'
    # The run's --cfg-options come along: a test split elsewhere lands in the exported
    # config, and a student changed by them must still match the checkpoint's.
    moved = export_student(config_path(*CONFIG.split('/')),
                           last_checkpoint(str(tmp_path / 'run')), str(tmp_path / 'moved'),
                           {'test_dataloader.dataset.data_root': '/elsewhere/fmnist'})[1]
    assert Config.fromfile(moved).test_dataloader.dataset.data_root == '/elsewhere/fmnist'
    with pytest.raises(ValueError, match=r'student differs from .*model.student'):
        export_student(config_path(*CONFIG.split('/')), last_checkpoint(str(tmp_path / 'run')),
                       str(tmp_path / 'wide'), {'model.student.backbone.width': 1.0})
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')
    student = MMPRETRAIN_MODELS.build(cfg.model)
    load_checkpoint(student, ckpt, strict=True)
    student.eval()
    trained = runner.model.student.eval()
    x = torch.randn(4, 1, 32, 32)
    device = next(trained.parameters()).device  # a GPU where the runner has one
    torch.testing.assert_close(student(x, mode='tensor'),
                               trained(x.to(device), mode='tensor').cpu())

    # mmengine's plain Runner tests it on the real test split (first 50 images).
    cfg.test_dataloader.dataset.indices = 50
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    cfg.work_dir = str(tmp_path / 'test')
    cfg.load_from = ckpt
    cfg.experiment_name = 'test_export_student'
    metrics = Runner.from_cfg(cfg).test()
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0

    # mmpretrain's inferencer runs it on image files (loaded in colour: the exported test
    # pipeline's ToGrayscale makes them the student's one channel again) with the class
    # names, and gives the scores the trained student gives the same pixels.
    import cv2
    from mmpretrain.apis import ImageClassificationInferencer
    pixels = (torch.rand(3, 28, 28, generator=torch.Generator().manual_seed(0)) * 255).byte()
    files = []
    for i, img in enumerate(pixels.numpy()):
        files.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(files[-1], img)
    inferencer = ImageClassificationInferencer(model=cfg_path, pretrained=ckpt, device='cpu')
    results = inferencer(files, batch_size=3)
    padded = torch.nn.functional.pad(pixels.float(), (2, 2, 2, 2)).unsqueeze(1)
    expected = trained((padded - 72.94) / 90.0, mode='tensor').softmax(1)
    got = torch.tensor(np.stack([r['pred_scores'] for r in results]))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert results[0]['pred_class'] in ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                                        'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot')
    init_default_scope('mmdfkd')
    assert MODELS.get('LeNet') is not None


def test_tools_refuse_a_teacher_checkpoint_with_the_fix(teacher_ckpt, tmp_path):
    """The teacher's own checkpoint is the likeliest wrong file: export and synthesis both
    name what they need instead of failing on missing keys."""
    from mmdfkd.apis.synthesize import build_from_checkpoint
    config = config_path('deepinversion', 'deepinversion_lenet5bn_lenet5half_fmnist.py')
    with pytest.raises(ValueError, match=r'holds no `student.\*` weights: '
                                         r'tools/export_student.py needs a checkpoint saved by '
                                         r'a data-free run'):
        export_student(config, teacher_ckpt, str(tmp_path / 'out'))
    with pytest.raises(ValueError, match='tools/synthesize.py needs a checkpoint'):
        build_from_checkpoint(config, teacher_ckpt)
    assert not (tmp_path / 'out').exists()


@needs_fmnist
def test_test_tool_refuses_a_checkpoint_without_the_evaluated_weights(teacher_ckpt, tmp_path):
    """mmengine loads ``load_from`` non-strictly, so a wrong checkpoint used to be evaluated as
    randomly initialised weights (11.8 % with the teacher's file and a data-free config);
    tools/test.py refuses it both ways round and accepts the right ones."""
    from mmdfkd.apis import build_runner, load_config
    from mmdfkd.engine.runner.checkpoint_loader import check_checkpoint_fits
    run = run_datafree(CONFIG, str(tmp_path / 'run'), teacher_ckpt, max_iters=1)
    run_ckpt = last_checkpoint(str(tmp_path / 'run'))
    with pytest.raises(ValueError, match=r'does not fit the weights tools/test.py evaluates '
                                         r'\(missing student.backbone.*\(18 in all\).*saved '
                                         r'by this data-free run'):
        check_checkpoint_fits(run.model, teacher_ckpt, 'tools/test.py')
    check_checkpoint_fits(run.model, run_ckpt, 'tools/test.py')

    teacher_cfg = load_config(config_path('teachers', 'lenet5bn_fmnist.py'),
                              work_dir=str(tmp_path / 'teacher'))
    teacher_cfg.experiment_name = 'test_checkpoint_fits_teacher'
    teacher_run = build_runner(teacher_cfg)
    with pytest.raises(ValueError, match=r"\(missing backbone.*iter_N.pth goes with its data-free"):
        check_checkpoint_fits(teacher_run.model, run_ckpt, 'tools/test.py')
    check_checkpoint_fits(teacher_run.model, teacher_ckpt, 'tools/test.py')


@needs_fmnist
def test_tools_refuse_a_checkpoint_of_another_config_and_name_the_runs_own(teacher_ckpt,
                                                                          tmp_path):
    """A run's checkpoint given with another method's config used to fail on raw state-dict
    errors (synthesis), write a student.pth its exported config cannot load (export), or
    evaluate a student of another width with random weights (mmengine skips weights of
    another shape non-strictly). Each tool now refuses it and names the config the run
    dumped into its work dir; the teacher's own config is refused by synthesis up front."""
    import glob
    from torch import nn

    from mmdfkd.apis.synthesize import build_from_checkpoint
    from mmdfkd.engine.runner.checkpoint_loader import check_checkpoint_fits
    run_dir = tmp_path / 'run'
    run_datafree(CONFIG, str(run_dir), teacher_ckpt, max_iters=1)
    run_ckpt = last_checkpoint(str(run_dir))
    dumped = glob.glob(str(run_dir / '*.py'))
    assert len(dumped) == 1
    hint = rf'needs the config the run used \({dumped[0]}\)'

    inversion = config_path('deepinversion', 'deepinversion_lenet5bn_lenet5half_fmnist.py')
    with pytest.raises(ValueError, match=r'was saved by a run of another config .*'
                                         r'not in the model synthesizer.generator.*'
                                         + hint):
        build_from_checkpoint(inversion, run_ckpt,
                              {'model.teacher_ckpt': teacher_ckpt})
    with pytest.raises(ValueError, match=r'has no model.synthesizer .*' + hint):
        build_from_checkpoint(config_path('teachers', 'lenet5bn_fmnist.py'), run_ckpt)

    blackbox = config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py')
    with pytest.raises(ValueError, match=r"student differs from .*model.student "
                                         r'\(missing backbone.conv1.0.bias.*e.g. '
                                         r'backbone.conv1.0.weight: checkpoint \(3, 1, 5, 5\), '
                                         r'model \(6, 1, 5, 5\).*' + hint):
        export_student(blackbox, run_ckpt, str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()

    # tools/test.py's check on a model whose student is the black-box config's LeNet-5.
    blackbox_cfg = Config.fromfile(blackbox)
    from mmengine.registry import init_default_scope
    init_default_scope('mmdfkd')
    model = nn.Module()
    model.student = MODELS.build(blackbox_cfg.model.student)
    with pytest.raises(ValueError, match=r'does not fit .*student.backbone.conv1.0.weight: '
                                         r'checkpoint \(3, 1, 5, 5\).*its student '
                                         r'is another model; pass the config the run used'):
        check_checkpoint_fits(model, run_ckpt, 'tools/test.py')
    # and the run's own config still goes through all of them
    model = build_from_checkpoint(dumped[0], run_ckpt)
    export_student(dumped[0], run_ckpt, str(tmp_path / 'out'))

    # A generator method draws fresh images, so it needs their number: refused before any
    # folder is made (it used to leave ten empty class folders behind).
    from mmdfkd.apis.synthesize import export_image_folder
    classes = [str(i) for i in range(10)]
    with pytest.raises(ValueError, match=r'draws fresh images.*--num-images N'):
        export_image_folder(model, str(tmp_path / 'images'), classes)
    assert not (tmp_path / 'images').exists()
    counts = export_image_folder(model, str(tmp_path / 'images'), classes, num_images=10)
    assert sum(counts.values()) == 10
    assert len(glob.glob(str(tmp_path / 'images' / '*' / '*.png'))) == 10
    # A second export into the same folder used to leave the first one's images beside its
    # own (CustomDataset read both, stale labels included): refused, or replaced on request.
    with pytest.raises(FileExistsError, match=r'holds an earlier export \(10 class folders\).*'
                                              r'--overwrite'):
        export_image_folder(model, str(tmp_path / 'images'), classes, num_images=4)
    counts = export_image_folder(model, str(tmp_path / 'images'), classes, num_images=4,
                                 overwrite=True)
    written = glob.glob(str(tmp_path / 'images' / '*' / '*.png'))
    assert sum(counts.values()) == 4 and len(written) == 4
    # Anything but an earlier export is never deleted.
    (tmp_path / 'images' / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match=r'holds other files than an earlier export '
                                              r'\(notes.txt\)'):
        export_image_folder(model, str(tmp_path / 'images'), classes, num_images=4,
                            overwrite=True)
    assert (tmp_path / 'images' / 'notes.txt').exists()
    assert sorted(glob.glob(str(tmp_path / 'images' / '*' / '*.png'))) == sorted(written)


@needs_fmnist
def test_test_tool_writes_metrics_into_a_new_folder(teacher_ckpt, tmp_path):
    """`tools/test.py --out DIR/metrics.json` used to evaluate and then lose the numbers on
    a FileNotFoundError when DIR did not exist."""
    import glob
    import json
    import subprocess
    import sys

    from .conftest import ROOT, small_eval_options
    run_dir = tmp_path / 'run'
    run_datafree(CONFIG, str(run_dir), teacher_ckpt, max_iters=1)
    out = tmp_path / 'new' / 'folder' / 'metrics.json'
    options = [f'{k}={v}' for k, v in small_eval_options().items()]
    done = subprocess.run([sys.executable, f'{ROOT}/tools/test.py', glob.glob(f'{run_dir}/*.py')[0],
                           last_checkpoint(str(run_dir)), '--out', str(out),
                           '--work-dir', str(tmp_path / 'test'), '--cfg-options', *options],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads(out.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0


def test_a_run_without_a_test_split_exports_its_student_and_images(teacher_ckpt, tmp_path,
                                                                   monkeypatch):
    """A run where no data is at hand (the CIFAR configs on a machine without CIFAR, run with
    the splits set to None) dumps a config without test split. Exporting its student used to
    crash on `None.to_dict()`, exporting its images on `None.dataset`; tools/test.py with it
    failed inside mmengine without naming a key."""
    import glob
    import runpy

    from mmdfkd.apis import build_runner
    from mmdfkd.apis.synthesize import (build_from_checkpoint, evaluation_class_names,
                                        export_image_folder)

    from .conftest import ROOT
    from .runner_utils import datafree_cfg
    run_dir = tmp_path / 'run'
    cfg = datafree_cfg(CONFIG, str(run_dir), teacher_ckpt, max_iters=1)
    for key in ('val', 'test'):
        for part in ('dataloader', 'cfg', 'evaluator'):
            cfg[f'{key}_{part}'] = None
    build_runner(cfg).train()
    dumped, = glob.glob(str(run_dir / '*.py'))
    run_ckpt = last_checkpoint(str(run_dir))

    ckpt, cfg_path = export_student(dumped, run_ckpt, str(tmp_path / 'export'))
    exported = Config.fromfile(cfg_path)
    assert 'test_dataloader' not in exported and 'test_evaluator' not in exported
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
    init_default_scope('mmpretrain')
    load_checkpoint(MMPRETRAIN_MODELS.build(exported.model), ckpt, strict=True)
    init_default_scope('mmdfkd')
    monkeypatch.setattr('sys.argv', ['tools/test.py', cfg_path, ckpt])
    with pytest.raises(SystemExit, match='has no test_dataloader / test_evaluator: there is no '
                                         'real test split'):
        runpy.run_path(f'{ROOT}/tools/test.py', run_name='__main__')

    model = build_from_checkpoint(dumped, run_ckpt)
    assert model.num_classes == 10
    names, note = evaluation_class_names(Config.fromfile(dumped), model.num_classes)
    assert names == [str(i) for i in range(10)] and 'no test_dataloader' in note
    counts = export_image_folder(model, str(tmp_path / 'images'), names, num_images=6)
    assert sum(counts.values()) == 6 and '0_0' in counts
    with pytest.raises(ValueError, match='3 class names for a teacher of 10 classes'):
        export_image_folder(model, str(tmp_path / 'images'), ['a', 'b', 'c'], num_images=6)


def test_class_names_come_from_the_evaluation_split_or_fall_back_to_indices(tmp_path):
    from mmdfkd.apis.synthesize import evaluation_class_names
    cifar = Config.fromfile(config_path('deepinversion',
                                        'deepinversion_resnet34_resnet18_cifar10.py'))
    names, note = evaluation_class_names(cifar, 10)
    assert note is None and names[0] == 'airplane' and names[-1] == 'truck'
    # a 100-class teacher with the CIFAR-10 split: the names would be wrong, so indices
    names, note = evaluation_class_names(cifar, 100)
    assert names == [str(i) for i in range(100)]
    assert 'has 10 classes but the teacher 100' in note
    # wrapped datasets are unwrapped, and explicit metainfo (a file, as mmpretrain reads it)
    # comes before the dataset class's own names
    (tmp_path / 'classes.txt').write_text('cat\ndog\n')
    wrapped = Config(dict(test_dataloader=None, val_dataloader=dict(dataset=dict(
        type='RepeatDataset', times=2, dataset=dict(
            type='CustomDataset', metainfo=dict(classes=str(tmp_path / 'classes.txt')))))))
    assert evaluation_class_names(wrapped, 2) == (['cat', 'dog'], None)
    fmnist = Config.fromfile(config_path(*CONFIG.split('/')))
    assert evaluation_class_names(fmnist, 10)[0][9] == 'Ankle boot'


@needs_fmnist
def test_the_student_exports_to_onnx_and_answers_as_in_torch(teacher_ckpt, tmp_path):
    """export_student_onnx (tools/export_student.py --onnx): any batch size, the torch
    student's logits on real test images, and --shape only with --onnx."""
    pytest.importorskip('onnxruntime')
    import subprocess
    import sys

    import onnxruntime

    from mmdfkd.apis.export import export_student_onnx
    from mmdfkd.datasets.fashion_mnist import FashionMNISTIdx

    from .conftest import ROOT
    runner = run_datafree(CONFIG, str(tmp_path / 'run'), teacher_ckpt, max_iters=1)
    config = config_path(*CONFIG.split('/'))
    ckpt, _ = export_student(config, last_checkpoint(str(tmp_path / 'run')),
                             str(tmp_path / 'export'))
    onnx_path = str(tmp_path / 'export' / 'student.onnx')
    assert export_student_onnx(config, ckpt, onnx_path) < 1e-4
    # seven real test images, normalised as the config's test pipeline does (pad to 32)
    split = FashionMNISTIdx(split='test', indices=7, lazy_init=False)
    pixels = torch.stack([torch.from_numpy(split.get_data_info(i)['img']) for i in range(7)])
    images = (torch.nn.functional.pad(pixels.float().unsqueeze(1), (2, 2, 2, 2)) - 72.94) / 90.0
    session = onnxruntime.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    answered = torch.from_numpy(session.run(None, {'images': images.numpy()})[0])
    with torch.no_grad():
        expected = runner.model.student.eval()(images, mode='tensor')
    torch.testing.assert_close(answered, expected, atol=1e-4, rtol=1e-4)

    refused = subprocess.run(
        [sys.executable, f'{ROOT}/tools/export_student.py', config, ckpt, str(tmp_path / 'x'),
         '--shape', '1', '32', '32'], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode != 0 and '--shape is the input size of the ONNX model' in (
        refused.stderr)
