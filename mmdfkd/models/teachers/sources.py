"""Where a teacher's answers come from: a local mmpretrain model or any Python callable.

A *source* maps a batch of images (``(N, C, H, W)`` float, the teacher's normalised input
space) to what an access level allows: top-1 labels (``output='top1'``) or probabilities
(``output='probs'``). Black-box wrappers hold their source outside the module tree, so the
model inside never shows up in ``parameters()``, ``state_dict()``, hooks or checkpoints.
"""
import glob
import os.path as osp
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from mmdfkd.engine.runner.checkpoint_loader import load_local_checkpoint, weights_mismatch
from mmdfkd.models.utils.classifier import declared_num_classes
from mmdfkd.registry import MODELS
from mmdfkd.utils.named_callable import import_named_callable
from mmdfkd.utils.repo_paths import REPO_ROOT, found_under_repo_root

OUTPUTS = ('top1', 'probs')
TEACHERS_DIR = osp.join(REPO_ROOT, 'configs', 'teachers')


def _recipe_of(model: nn.Module) -> str | None:
    """The recipe in ``configs/teachers/`` that builds ``model``'s architecture (same
    parameter names and shapes), if one does. Only run to word an error: it builds them all."""
    from mmengine.config import Config
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for path in sorted(glob.glob(osp.join(TEACHERS_DIR, '*.py'))):
        try:
            candidate = MODELS.build(Config.fromfile(path).model)
        except Exception:  # a recipe that does not build here names nothing
            continue
        if {k: tuple(v.shape) for k, v in candidate.state_dict().items()} == shapes:
            return osp.splitext(osp.basename(path))[0]
    return None


def teacher_hint(checkpoint: str | None, model: nn.Module | None = None) -> str:
    """How to get the missing teacher: the recipe in ``configs/teachers/`` whose name is the
    checkpoint's run folder (the configs' ``work_dirs/teachers/<name>/epoch_N.pth``
    convention), else the recipe that builds ``model``'s architecture, else how to train
    one from its own classifier config."""
    name = osp.basename(osp.dirname(checkpoint)) if checkpoint else ''
    if not (name and osp.isfile(osp.join(TEACHERS_DIR, f'{name}.py'))):
        name = _recipe_of(model) if model is not None else None
    if name is None:
        recipes = ', '.join(sorted(osp.splitext(osp.basename(p))[0]
                                   for p in glob.glob(osp.join(TEACHERS_DIR, '*.py'))))
        return ('train it with the classifier config it stands for (`python tools/train.py '
                'TEACHER_CONFIG --work-dir work_dirs/teachers/NAME`) and pass the last '
                'epoch with `--cfg-options teacher_ckpt=work_dirs/teachers/NAME/epoch_N.pth`; '
                f'configs/teachers/ holds the recipes of the shipped settings ({recipes})')
    run = f'work_dirs/teachers/{name}'
    return (f'train one with `python tools/train.py configs/teachers/{name}.py --work-dir '
            f'{run}` and pass it with `--cfg-options teacher_ckpt={run}/epoch_N.pth` (the '
            'last epoch of the recipe)')


def load_classifier_weights(model: nn.Module, checkpoint: str | None) -> nn.Module:
    """Load a trained classifier's weights (from its own training run or from a data-free
    run's checkpoint, whose ``teacher.`` part is taken) and freeze it in eval mode."""
    if not checkpoint:
        raise ValueError('teacher_ckpt (the teacher checkpoint) is not set: '
                         f'{teacher_hint(checkpoint, model)}.')
    if osp.isdir(checkpoint):
        # A teacher's work dir instead of one of its checkpoints: name the one to pass.
        last = osp.join(checkpoint, 'last_checkpoint')
        found = None
        if osp.isfile(last):
            with open(last) as f:
                found = f.read().strip()
        fix = (f'e.g. its last one: teacher_ckpt={found}' if found else
               'epoch_N.pth or iter_N.pth inside it, or ' +
               teacher_hint(osp.join(checkpoint, 'epoch_N.pth'), model))
        raise IsADirectoryError(f"teacher_ckpt '{checkpoint}' is a folder; pass a checkpoint "
                                f'file, {fix}.')
    if not osp.isfile(checkpoint):
        elsewhere = found_under_repo_root(checkpoint, 'teacher_ckpt')
        if elsewhere:
            raise FileNotFoundError(elsewhere)
        raise FileNotFoundError(f"teacher_ckpt '{checkpoint}' does not exist: "
                                f'{teacher_hint(checkpoint, model)}.')
    saved = load_local_checkpoint(checkpoint, map_location='cpu')
    meta = saved.get('meta')
    run = meta.get('experiment_name') if isinstance(meta, dict) else None
    state = saved.get('state_dict', saved)
    for prefix in ('teacher.model.', 'teacher.'):
        if any(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            break
    state = {k[len('module.'):] if k.startswith('module.') else k: v for k, v in state.items()}
    check_state_fits(model, state, checkpoint, run=run)
    model.load_state_dict(state, strict=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def check_state_fits(model: nn.Module, state: dict, checkpoint: str,
                     run: str | None = None, examples: int = 3) -> None:
    """Raise a ``ValueError`` that names what differs when ``state`` is not a state dict of
    ``model``'s architecture (instead of torch's key dump), e.g. a LeNet-5 checkpoint given
    to a config whose teacher is LeNet-5-BN."""
    problems = weights_mismatch(model.state_dict(), state, examples=examples)
    if not problems:
        return
    origin = f" (saved by the run '{run}')" if run else ''
    raise ValueError(
        f"teacher_ckpt '{checkpoint}'{origin} does not fit the teacher model of the config: "
        f"{'; '.join(problems)}. Pass a checkpoint trained with the teacher's architecture "
        '(model.teacher, e.g. configs/teachers/lenet5bn_fmnist.py for LeNet-5-BN, '
        'configs/teachers/lenet5_fmnist.py for LeNet-5), or change model.teacher to the '
        "checkpoint's architecture.")


def check_output(output: str) -> str:
    """``output`` itself when it is one of ``OUTPUTS``; a ``ValueError`` naming them otherwise."""
    if output not in OUTPUTS:
        raise ValueError(f"teacher output must be one of {OUTPUTS}, got '{output}'")
    return output


class ClassifierSource:
    """A trained mmpretrain classifier answering with labels or probabilities.

    Deliberately not an ``nn.Module``: a wrapper holding it does not register the model.

    Args:
        model (dict | nn.Module): Classifier config (built in the registry) or module.
        checkpoint (str, optional): Its trained weights (required with a config).
        output (str): ``'top1'`` or ``'probs'``.
        device (str): Where the model runs.
    """

    def __init__(self, model: dict | nn.Module, checkpoint: str | None, output: str = 'top1',
                 device: str = 'cpu') -> None:
        self.output = check_output(output)
        if isinstance(model, dict):
            model = load_classifier_weights(MODELS.build(model), checkpoint)
        self._model = model.eval().to(device)
        self.device = device

    @property
    def num_classes(self) -> int | None:
        """The class count the classifier declares (``None`` when it declares none)."""
        return declared_num_classes(self._model)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's top-1 labels (N,) or probabilities (N, C) for ``images``, on the CPU."""
        logits = self._model(images.to(self.device), mode='tensor')
        out = logits.argmax(1) if self.output == 'top1' else logits.softmax(1)
        return out.cpu()


class CallableSource:
    """Any Python callable (a scikit-learn ``predict``, an ONNX session wrapped in a function,
    ...) taking a float32 ``numpy`` batch ``(N, C, H, W)`` and returning labels ``(N,)`` or
    probabilities ``(N, C)`` as a list, ``numpy`` array or tensor.

    Args:
        fn (callable | str): The callable, or ``'package.module:function'``.
        output (str): What it returns, ``'top1'`` or ``'probs'``.
    """

    def __init__(self, fn: Callable | str, output: str = 'top1') -> None:
        self.output = check_output(output)
        self.fn = resolve_callable(fn)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The callable's answer for ``images`` as labels (N,) (the top-1 of scores it returns)
        or probabilities (N, C).
        """
        answer = self.fn(images.detach().cpu().float().numpy())
        answer = torch.as_tensor(np.asarray(answer))
        if self.output == 'top1':
            # A callable answering with scores (scikit-learn's predict_proba, an ONNX model's
            # logits) gives its top-1; cast to integers, the scores became label 0 everywhere.
            return (answer.argmax(1) if answer.dim() == 2 else answer).long()
        return answer.float()


class OnnxClassifier:
    """An ONNX image classifier as a teacher callable (``onnxruntime`` on the CPU).

    Use it where a teacher exists only as an ``.onnx`` file (exported by another framework,
    or handed over without its weights): ``model.teacher.callable=OnnxClassifier(path)`` in
    a Python config, or for a fixed file ``'package.module:name'`` of an instance. It answers a
    float32 batch ``(N, C, H, W)`` in the model's normalised input space with its class
    probabilities ``(N, num_classes)``, so ``HardLabelTeacher`` reduces them to the top-1 and
    ``SoftLabelTeacher`` passes them on.

    Args:
        path (str): The ``.onnx`` file (its first input takes the images).
        outputs (str): What the model's first output holds, ``'logits'`` (softmax applied
            here) or ``'probs'``.
    """

    def __init__(self, path: str, outputs: str = 'logits') -> None:
        if outputs not in ('logits', 'probs'):
            raise ValueError(f"OnnxClassifier outputs must be 'logits' or 'probs', got "
                             f'{outputs!r}')
        if not osp.isfile(path):
            raise FileNotFoundError(f"OnnxClassifier: '{path}' does not exist (the teacher's "
                                    '.onnx file)')
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError('OnnxClassifier needs onnxruntime: pip install onnxruntime '
                              '(requirements/optional.txt)') from e
        self.path, self.outputs = path, outputs
        self.session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, num_classes) for a float32 batch (N, C, H, W)."""
        scores = self.session.run(None, {self.input_name: np.ascontiguousarray(
            images, dtype=np.float32)})[0]
        if self.outputs == 'probs':
            return scores
        return torch.from_numpy(scores).float().softmax(1).numpy()


def resolve_callable(fn: Callable | str) -> Callable:
    """A callable, or one named ``'package.module:attribute'``."""
    if callable(fn):
        return fn
    return import_named_callable(fn, 'model.teacher.callable', 'my_package.models:predict')
