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
