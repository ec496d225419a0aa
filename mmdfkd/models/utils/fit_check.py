"""Build-time check that a method's image shape and class counts fit its models.

A config whose ``model.synthesizer.image_shape`` or ``num_classes`` does not fit the teacher
or the student otherwise fails at the first training step with a convolution's shape error
that names no config key. Every algorithm runs its models once on a zero batch when it is
built instead, so the error names the key to change.
"""
import math
from collections.abc import Mapping, Sequence

import torch
from torch import nn


def count_classes(model: nn.Module, role: str, image_shape: Sequence[int],
                  shape_key: str = 'model.synthesizer.image_shape') -> int:
    """Number of logits ``model`` gives for images of ``image_shape`` (C, H, W).

    Runs the model once on a zero batch of two images without gradient in eval mode (so no BN
    statistic moves) and restores its mode afterwards.

    Args:
        model: An mmpretrain classifier, or any model whose ``forward(images, mode='tensor')``
            returns logits (``ClassifierEnsemble``, white-box teacher wrappers).
        role: The config key of the model, e.g. ``'model.student'``, for the error message.
        image_shape: The (C, H, W) the synthesizer makes.
        shape_key: The config key(s) that set ``image_shape``, for the error message.

    Raises:
        ValueError: naming ``shape_key`` when the forward fails.
    """
    probe = torch.zeros(2, *image_shape)
    was_training = model.training
    try:
        with torch.no_grad():
            logits = model.eval()(probe, mode='tensor')
    except (RuntimeError, ValueError, AssertionError) as err:
        # AssertionError: e.g. window transformers refuse maps smaller than their window.
        raise ValueError(
            f'{shape_key} {tuple(image_shape)} does not fit {role}: its forward on images of '
            f'that shape fails with "{err}". Set {shape_key} to the (C, H, W) the models take, '
            'e.g. (1, 32, 32) for the Fashion-MNIST LeNets, (3, 32, 32) for CIFAR.') from err
    finally:
        model.train(was_training)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2:
        head = getattr(model, 'head', None)
        got = (f'a {type(logits).__name__} of {len(logits)}' if isinstance(logits, (tuple, list))
               else f'a tensor of shape {tuple(logits.shape)}'
               if isinstance(logits, torch.Tensor) else type(logits).__name__)
        raise ValueError(
            f"{role} gives {got} from forward(images, mode='tensor') (its head: "
            f'{type(head).__name__}); data-free distillation needs one (N, num_classes) '
            'logits tensor. Use a classifier whose head returns one score tensor (e.g. '
            "LinearClsHead; ConformerHead returns its two branches' scores apart).")
    return logits.size(1)


def check_models_fit(image_shape: Sequence[int], models: Mapping[str, nn.Module],
                     declared_classes: Mapping[str, int | None] | None = None,
                     shape_key: str = 'model.synthesizer.image_shape') -> int:
    """Check that every model takes ``image_shape`` and that all agree on the class count.

    Args:
        image_shape: The synthesizer's (C, H, W).
        models: Config key -> model, e.g. ``{'model.teacher': t, 'model.student': s}``; the
            first one is the reference whose class count the others must match. Only models
            that may be run freely belong here (never a query-counted black-box teacher).
        declared_classes: Config key -> a class count set in the config (e.g.
            ``{'model.synthesizer.num_classes': 10}``); ``None`` values are skipped.
        shape_key: The config key(s) that set ``image_shape``, for the error message.

    Returns:
        The reference model's class count.

    Raises:
        ValueError: naming the key to change.
    """
    (reference, reference_model), *others = models.items()
    num_classes = count_classes(reference_model, reference, image_shape, shape_key)
    for role, model in others:
        classes = count_classes(model, role, image_shape, shape_key)
        if classes != num_classes:
            raise ValueError(f'{reference} has {num_classes} classes and {role} {classes}: '
                             f"set {role}'s head num_classes to {num_classes}.")
    for key, declared in (declared_classes or {}).items():
        if declared is not None and declared != num_classes:
            raise ValueError(f'{key} is {declared} but {reference} has {num_classes} classes: '
                             f"set {key}={num_classes}, or {reference}'s head num_classes to "
                             f'{declared}, whichever is wrong.')
    return num_classes


def check_batch_sizes(sizes: Mapping[str, int | None], minimum: int = 1) -> None:
    """Refuse batch sizes that are not ints >= ``minimum``, naming the key (``None`` values
    mean "the default" and are skipped). A zero batch otherwise surfaces steps later as an
    empty-tensor error, or falls back silently to a default."""
    for key, size in sizes.items():
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)
                                 or size < minimum):
            raise ValueError(f'{key} must be an int >= {minimum} (images per batch), got '
                             f'{size!r}')


def check_step_sizes(sizes: Mapping[str, float]) -> None:
    """Refuse step sizes (learning rates of the optimisers a synthesizer builds itself, a
    guidance step) that are not finite numbers >= 0, naming the key; torch's own check says
    only "Invalid learning rate: -1", at the first synthesis. 0 stays allowed: it freezes
    what the step would move (an ablation)."""
    for key, size in sizes.items():
        if (not isinstance(size, (int, float)) or isinstance(size, bool)
                or not math.isfinite(size) or size < 0):
            raise ValueError(f'{key} must be a number >= 0 (a step size; 0 freezes what it '
                             f'moves), got {size!r}')
