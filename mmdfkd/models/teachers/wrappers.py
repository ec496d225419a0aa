"""Registered teacher wrappers, one per access level."""
from collections.abc import Callable

import torch
from torch import nn

from mmdfkd.registry import MODELS
from .base import BaseTeacher
from .remote import RemoteTeacherClient
from .sources import CallableSource, ClassifierSource, OnnxClassifier, load_classifier_weights


def build_source(output: str, model: dict | None, checkpoint: str | None,
                 fn: Callable | str | None, url: str | None, remote: dict | None,
                 device: str, onnx: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """The one source named by exactly one of ``model``, ``callable``, ``url`` and ``onnx``."""
    given = [name for name, v in (('model', model), ('callable', fn), ('url', url),
                                  ('onnx', onnx)) if v is not None]
    if len(given) != 1:
        fix = ''
        if len(given) > 1:
            # Configs inherit a local `model`; a user adding `url` must clear it (and its
            # checkpoint), which the override syntax alone does not make obvious.
            clear = [f'model.teacher.{k}=None' for k in given[:-1]]
            clear += ['model.teacher.checkpoint=None'] if 'model' in given[:-1] else []
            fix = (f'; keep one and set the others to None, e.g. to keep `{given[-1]}`: '
                   f"--cfg-options {' '.join(clear)}")
        raise ValueError('model.teacher needs exactly one of `model` (an mmpretrain classifier '
                         'config, with `checkpoint`), `callable` (a function or '
                         "'package.module:function'), `url` (a served teacher) or `onnx` (an "
                         f'.onnx file); got {given or "none"}{fix}')
    if model is not None:
        return ClassifierSource(model, checkpoint, output=output, device=device)
    if onnx is not None:
        return CallableSource(OnnxClassifier(onnx), output=output)
    if fn is not None:
        return CallableSource(fn, output=output)
    return RemoteTeacherClient(url, output=output, **(remote or {}))


class SourcedTeacher(BaseTeacher):
    """A black-box teacher answering from a source (local classifier, callable or HTTP
    endpoint) that asks it for ``source_output`` (``'top1'`` or ``'probs'``) and reduces the
    answer with ``_format_answer``; the arguments are those of :class:`HardLabelTeacher`."""

    source_output: str

    def __init__(self, num_classes: int, model: dict | None = None,
                 checkpoint: str | None = None, callable: Callable | str | None = None,
                 url: str | None = None, remote: dict | None = None,
                 query_budget: int | None = None, cache: bool = True,
                 device: str = 'cpu', onnx: str | None = None) -> None:
        super().__init__(num_classes, query_budget=query_budget, cache=cache)
        # Plain attribute (not a registered module): invisible to parameters()/state_dict().
        self.__source = build_source(self.source_output, model, checkpoint, callable, url,
                                     remote, device, onnx)

    def _answer(self, images: torch.Tensor) -> torch.Tensor:
        return self._format_answer(self.__source(images.detach()))

    def _format_answer(self, answer: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@MODELS.register_module()
class HardLabelTeacher(SourcedTeacher):
    """A teacher that answers each image with its top-1 class and nothing else.

    The source (local classifier, callable or HTTP endpoint) is kept outside the module tree:
    no parameter, buffer, submodule, hook point, gradient or checkpoint entry reaches the
    model behind it. Answers are ``long`` tensors without autograd history.

    Args:
        num_classes (int): Classes the teacher predicts.
        model (dict, optional): mmpretrain classifier config of a local teacher...
        checkpoint (str, optional): ...and its trained weights.
        callable (callable | str, optional): ...or a function returning labels.
        url (str, optional): ...or the base URL of a served teacher...
        onnx (str, optional): ...or an ``.onnx`` classifier file, run with onnxruntime
            (:class:`~mmdfkd.models.teachers.sources.OnnxClassifier`; its first output holds
            logits).
        remote (dict, optional): ``RemoteTeacherClient`` options (batch size, retries...).
        query_budget (int, optional): Most images ever sent.
        cache (bool): Answer repeated images from the cache.
        device (str): Where a local model runs.
    """

    access = 'hard-label'
    source_output = 'top1'

    def _format_answer(self, answer: torch.Tensor) -> torch.Tensor:
        answer = torch.as_tensor(answer)
        # A source giving more than labels (e.g. probabilities) is reduced to the top-1 here.
        return (answer.argmax(1) if answer.dim() == 2 else answer).long().cpu()


@MODELS.register_module()
class SoftLabelTeacher(SourcedTeacher):
    """A teacher that answers with class probabilities, computed without autograd (no
    gradient reaches the images or the model); same sources and accounting as
    :class:`HardLabelTeacher`."""

    access = 'soft-label'
    source_output = 'probs'

    def _format_answer(self, answer: torch.Tensor) -> torch.Tensor:
        answer = torch.as_tensor(answer)
        if answer.dim() != 2:
            raise ValueError('SoftLabelTeacher: the source answered labels, not probabilities; '
                             'use HardLabelTeacher for a top-1 source')
        return answer.float().cpu()


@MODELS.register_module()
class WhiteBoxTeacher(BaseTeacher):
    """The teacher model itself (``self.model``): weights, features, gradients and BN
    statistics, as model-inversion and generator methods need.

    Args:
        num_classes (int): Classes the teacher predicts.
        model (dict): mmpretrain classifier config.
        checkpoint (str): Its trained weights.
        query_budget (int, optional): Most images sent through :meth:`query_labels` /
            :meth:`query_probs` (direct calls of ``self.model`` are counted by the method).
        cache (bool): Answer repeated images from the cache.
    """

    access = 'white-box'

    def __init__(self, num_classes: int, model: dict, checkpoint: str | None,
                 query_budget: int | None = None, cache: bool = False) -> None:
        super().__init__(num_classes, query_budget=query_budget, cache=cache)
        self.model: nn.Module = load_classifier_weights(MODELS.build(model), checkpoint)

    def train(self, mode: bool = True) -> 'WhiteBoxTeacher':
        """Set the mode of the wrapper; the wrapped classifier stays in eval mode."""
        super().train(mode)
        self.model.eval()  # a teacher's BN statistics and dropout never change
        return self

    def _answer(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images, mode='tensor').softmax(1)
