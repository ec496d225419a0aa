"""Initialise a narrower student from a channel slice of a white-box teacher.

A data-free student normally starts from random weights and learns the teacher's function
only where the synthetic images go. When the student is the teacher's architecture at a
smaller width (LeNet-5-BN -> LeNet-5-half, WRN-16-4 -> WRN-16-2), the teacher's own weights
are a better start: keeping a subset of its channels keeps part of what it learned on the
real data, which the synthetic images alone do not teach (offline probes in
docs/benchmarks.md: +2 to +3 points on Fashion-MNIST). Only the teacher's weights are used,
so this stays data-free.
"""
import logging

import torch
from mmengine.logging import print_log
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .teacher_fold import fold_student_from_teacher

CHANNEL_ORDERS = ('first', 'magnitude')
# What ``model.student_init_from_teacher`` accepts: a slice in either channel order, or a fold
# of all channels (teacher_fold.py).
STUDENT_INIT_MODES = (*CHANNEL_ORDERS, 'fold')

_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _own_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and buffers that belong to ``module`` itself (not to its children)."""
    tensors = dict(module.named_parameters(recurse=False))
    tensors.update(dict(module.named_buffers(recurse=False)))
    return {k: v for k, v in tensors.items() if v is not None}


def _output_importance(layer: nn.Module, following: nn.Module | None) -> torch.Tensor:
    """How much each output channel of ``layer`` carries: the |gamma| of the BatchNorm that
    follows it (a BN-normalised channel's scale is its gamma, whatever the weight norm), or
    else the L1 norm of the channel's weights."""
    out_channels = layer.weight.size(0)
    if (isinstance(following, _BatchNorm) and following.affine
            and following.weight.numel() == out_channels):
        return following.weight.detach().abs()
    return layer.weight.detach().abs().flatten(1).sum(1)


def _input_index(teacher_in: int, student_in: int,
                 previous: tuple[int, torch.Tensor] | None) -> torch.Tensor | None:
    """Input channels of a layer: those the previous layer kept, expanded when the input is a
    channel-major flatten of the previous layer's map (``C x H x W`` -> ``C*H*W``)."""
    if teacher_in == student_in:
        return None
    if previous is None:
        return torch.arange(student_in)
    prev_teacher, kept = previous
    if prev_teacher == teacher_in and kept.numel() == student_in:
        return kept
    spatial = teacher_in // prev_teacher
    if (teacher_in % prev_teacher == 0 and kept.numel() * spatial == student_in):
        return (kept[:, None] * spatial + torch.arange(spatial)).flatten()
    return torch.arange(student_in)


def _device_of(model: nn.Module) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    if tensor is None:
        tensor = next(iter(model.buffers()), None)
    return tensor.device if tensor is not None else torch.device('cpu')


@torch.no_grad()
def init_student_from_teacher(student: nn.Module, teacher: nn.Module,
                              channel_order: str = 'magnitude', seed: int = 0) -> nn.Module:
    """Copy ``teacher``'s weights into ``student``, keeping a subset of every wider layer's
    channels (or, with ``channel_order='fold'``, merging all of them: see
    :func:`fold_student_from_teacher`).

    Student and teacher must have the same module names and types (the same architecture,
    the student narrower). Modules are visited in registration order; the output channels a
    conv/linear layer keeps are the input channels the next layer keeps (also across a
    flatten), and the BatchNorm after it keeps the same ones.

    Args:
        student (nn.Module): The narrower model; modified in place.
        teacher (nn.Module): The trained model; read only.
        channel_order (str): ``'first'`` keeps the first channels of every layer, which is
            consistent for any topology (residual networks included); ``'magnitude'`` keeps
            the channels with the largest BatchNorm |gamma| (or weight L1 norm), which assumes
            the layers run as a chain in registration order (LeNet, VGG, MLP heads);
            ``'fold'`` clusters every layer's channels and merges each cluster into one
            (same assumption, and ReLU-like activations).
        seed (int): Seed of the fold's k-means restarts (``'fold'`` only; the slices are
            deterministic).

    Returns:
        nn.Module: ``student``.
    """
    if channel_order not in STUDENT_INIT_MODES:
        raise ValueError(f'channel_order must be one of {STUDENT_INIT_MODES}, got '
                         f'{channel_order!r}.')
    devices = (_device_of(student), _device_of(teacher))
    if devices != (torch.device('cpu'),) * 2:
        # The slices' index tensors and the fold's seeded k-means live on the CPU: run them
        # there, so a GPU run starts from exactly the student a CPU run gets, then move both
        # models back (in place: the optimisers keep the same parameters).
        init_student_from_teacher(student.cpu(), teacher.cpu(), channel_order, seed)
        student.to(devices[0])
        teacher.to(devices[1])
        return student
    if channel_order == 'fold':
        fold_student_from_teacher(student, teacher, seed=seed)
        print_log(f'Student initialised from the teacher (channels folded, seed {seed}).',
                  logger='current',
                  level=logging.INFO)
        return student
    teacher_modules = dict(teacher.named_modules())
    student_modules = list(student.named_modules())
    ordered_teacher = list(teacher.named_modules())
    position = {name: i for i, (name, _) in enumerate(ordered_teacher)}
    previous: tuple[int, torch.Tensor] | None = None  # (teacher channels, kept indices)
    for name, s_module in student_modules:
        own = _own_tensors(s_module)
        if not own:
            continue
        t_module = teacher_modules.get(name)
        if t_module is None or type(t_module) is not type(s_module):
            raise ValueError(
                f"model.student_init_from_teacher: the teacher has no {type(s_module).__name__} "
                f"named '{name}'. Student and teacher must be the same architecture at "
                'different widths; remove student_init_from_teacher for other pairs.')
        t_own = _own_tensors(t_module)
        if isinstance(s_module, _LAYER_TYPES):
            t_out, s_out = t_module.weight.shape[:2], s_module.weight.shape[:2]
            if s_out[0] == t_out[0]:
                out_index = torch.arange(t_out[0])
            elif s_out[0] > t_out[0]:
                raise ValueError(f"model.student_init_from_teacher: '{name}' is wider in the "
                                 f'student ({s_out[0]}) than in the teacher ({t_out[0]}).')
            elif channel_order == 'first':
                out_index = torch.arange(s_out[0])
            else:
                nxt = position[name] + 1
                following = ordered_teacher[nxt][1] if nxt < len(ordered_teacher) else None
                importance = _output_importance(t_module, following)
                out_index = importance.argsort(descending=True)[:s_out[0]].sort().values
            in_index = _input_index(t_out[1], s_out[1], previous)
            for key, s_tensor in own.items():
                value = t_own[key].index_select(0, out_index)
                if value.dim() > 1 and in_index is not None:
                    value = value.index_select(1, in_index)
                _assign(name, key, s_tensor, value)
            previous = (t_out[0], out_index)
            continue
        for key, s_tensor in own.items():
            value = t_own[key]
            if value.dim() == 1 and value.numel() != s_tensor.numel() and previous is not None \
                    and previous[0] == value.numel():
                value = value.index_select(0, previous[1])  # a norm after the last layer
            _assign(name, key, s_tensor, value)
    print_log(f'Student initialised from the teacher ({channel_order} channels).',
              logger='current', level=logging.INFO)
    return student


def _assign(module_name: str, key: str, target: torch.Tensor, value: torch.Tensor) -> None:
    if value.shape != target.shape:
        raise ValueError(
            f"model.student_init_from_teacher: cannot map the teacher's "
            f"'{module_name}.{key}' {tuple(value.shape)} onto the student's "
            f'{tuple(target.shape)}; only conv/linear layers and the norms after them can be '
            'narrowed. Remove student_init_from_teacher for this pair.')
    target.copy_(value.to(target.dtype))
