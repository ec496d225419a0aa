"""Mixed precision (``--amp``) for the updates a data-free run makes itself."""
import torch
from mmengine.device import (is_cuda_available, is_mlu_available, is_musa_available,
                             is_npu_available)
from mmengine.optim import OptimWrapper


def amp_device_available() -> bool:
    """Whether mmengine's ``AmpOptimWrapper`` can be built here (it asserts an accelerator)."""
    return (is_cuda_available() or is_npu_available() or is_mlu_available()
            or is_musa_available())


def scale_like_backward(optim_wrapper: OptimWrapper) -> None:
    """Multiply the gradients on the wrapper's parameters by its loss scale, as
    ``optim_wrapper.backward(loss)`` would have.

    Under ``--amp`` every wrapper is an ``AmpOptimWrapper``, whose ``step()`` unscales the
    gradients (divides them by the loss scale, 65,536 at first) before the optimizer runs.
    Gradients that did not come through its ``backward`` (a plain ``loss.backward()`` shared
    with a pixel optimiser, a REPTILE weight difference) would shrink by that factor, and
    its ``step()`` refuses to run before any scaled backward at all. Call this on such
    gradients before ``step()``. A wrapper without a loss scaler is left alone.
    """
    scaler = getattr(optim_wrapper, 'loss_scaler', None)
    if scaler is None or not scaler.is_enabled():
        return
    params = [p for group in optim_wrapper.optimizer.param_groups for p in group['params']]
    if not params:
        return
    # scale() creates the scale on its first call (public API; nothing else does).
    scaler.scale(torch.zeros((), device=params[0].device))
    scale = scaler.get_scale()
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale)
