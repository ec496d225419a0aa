"""Temporarily freeze a module's parameters."""
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[None]:
    """Within the block ``module``'s parameters do not require grad.

    Gradients still flow *through* the module to its inputs (needed for adversarial
    synthesizer losses), but none accumulate in its ``.grad`` fields.
    """
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@contextmanager
def evaluation_mode(module: nn.Module) -> Iterator[None]:
    """Within the block ``module`` is in eval mode (BN uses, and does not update, its running
    statistics); its previous mode is restored afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
