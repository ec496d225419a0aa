"""First-order meta-learning updates (Fast-DFKD's meta generator)."""
import torch
from torch import nn

META_METHODS = ('reptile', 'fomaml')


class MetaGradient:
    """Turn an inner-loop adaptation of a copy (``fast``) into a gradient on ``meta``.

    * ``'reptile'`` (Nichol et al., 2018): ``grad = meta - fast`` after the inner loop, so a
      descent step moves the meta parameters towards the adapted ones.
    * ``'fomaml'`` (first-order MAML): the sum of the fast copy's gradients over the inner
      steps (call :meth:`accumulate` after each inner ``backward``).

    :meth:`apply` writes the result into ``meta``'s ``.grad`` fields; the caller's optimizer
    then takes the meta step.

    Args:
        method (str): ``'reptile'`` or ``'fomaml'``.
    """

    def __init__(self, method: str) -> None:
        if method not in META_METHODS:
            raise ValueError(f"meta method must be one of {META_METHODS}, got '{method}'")
        self.method = method
        self._sum: list[torch.Tensor] | None = None

    def accumulate(self, fast: nn.Module) -> None:
        """Add the fast copy's current gradients to the sum (``'fomaml'``; no-op for Reptile)."""
        if self.method != 'fomaml':
            return
        grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                 for p in fast.parameters()]
        self._sum = grads if self._sum is None else [a + g for a, g in zip(self._sum, grads)]

    @torch.no_grad()
    def apply(self, meta: nn.Module, fast: nn.Module) -> None:
        """Write the meta gradient into ``meta``'s ``.grad`` fields for the caller's optimizer."""
        if self.method == 'reptile':
            grads = [m - f for m, f in zip(meta.parameters(), fast.parameters())]
        else:
            if self._sum is None:
                raise RuntimeError('fomaml: accumulate() was never called in the inner loop.')
            grads = self._sum
        for p, g in zip(meta.parameters(), grads):
            p.grad = g.clone()
        self._sum = None
