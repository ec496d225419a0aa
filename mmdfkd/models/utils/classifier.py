"""Helpers to run mmpretrain classifiers on already-normalised image tensors."""
import torch
from torch import nn


def classifier_logits_and_features(model: nn.Module,
                                   images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(logits, penultimate_features)`` of an mmpretrain ``ImageClassifier``.

    The features are the head's ``pre_logits`` output (the input of its final linear layer).
    Heads with an ``fc`` layer reuse the features for the logits, so nothing runs twice.
    A model with its own ``logits_and_features`` (``ClassifierEnsemble``) answers itself.
    """
    if hasattr(model, 'logits_and_features'):
        return model.logits_and_features(images)
    if not (hasattr(model, 'extract_feat') and hasattr(model, 'head')):
        raise TypeError(f'{type(model).__name__} is not an mmpretrain ImageClassifier with a '
                        'head; teachers and students must be ImageClassifier models.')
    feats = model.extract_feat(images)
    pre = model.head.pre_logits(feats)
    if isinstance(pre, (tuple, list)):
        # Two-token heads (distilled DeiT: class and distillation tokens) embed by both.
        pre = torch.cat([p.flatten(1) for p in pre], dim=1)
    fc = getattr(model.head, 'fc', None)
    logits = fc(pre) if isinstance(fc, nn.Module) else model.head(feats)
    return logits, pre


def declared_num_classes(model: nn.Module) -> int | None:
    """The class count a built classifier declares: its head's ``num_classes`` (mmpretrain),
    its own (``TorchClassifier``) or its backbone's (VGG); ``None`` when none does."""
    for part in (getattr(model, 'head', None), model, getattr(model, 'backbone', None)):
        count = getattr(part, 'num_classes', None)
        if isinstance(count, int) and not isinstance(count, bool):
            return count
    return None
