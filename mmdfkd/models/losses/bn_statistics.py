"""Teacher BatchNorm-statistics matching (DeepInversion, CMI, Fast-DFKD, CPSC-DFKD, ...)."""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmdfkd.registry import MODELS


@MODELS.register_module()
class BNStatisticsLoss(nn.Module):
    """Distance between a batch's BN-input statistics and the teacher's running statistics.

    ``sum_l ||mu_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2`` over every
    BatchNorm layer of the bound model. Call :meth:`bind` once with the teacher; forward hooks
    then keep a reference to each BN layer's latest input, and :meth:`forward` turns the
    inputs of the most recent teacher forward into the loss (so student-only steps pay nothing).

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight
        # Plain lists, not ModuleLists: the BN layers belong to the teacher's state dict.
        self._layers: list[_BatchNorm] = []
        self._inputs: dict[int, torch.Tensor] = {}
        self._handles: list = []

    def bind(self, model: nn.Module) -> 'BNStatisticsLoss':
        """Attach forward hooks to every BatchNorm layer of ``model``."""
        for handle in self._handles:
            handle.remove()
        self._handles, self._inputs = [], {}
        self._layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        if not self._layers:
            raise ValueError(f'{type(model).__name__} has no BatchNorm layer; the BN-statistics'
                             ' loss needs a teacher with BatchNorm (e.g. LeNet5 with_bn=True)'
                             ' or set its weight to 0.')
        for idx, layer in enumerate(self._layers):
            self._handles.append(layer.register_forward_hook(self._make_hook(idx)))
        return self

    def _make_hook(self, idx: int):

        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self._inputs[idx] = inputs[0]

        return hook

    def forward(self) -> torch.Tensor:
        if len(self._inputs) != len(self._layers) or not self._layers:
            raise RuntimeError('BNStatisticsLoss: run the bound teacher on the batch first.')
        loss = 0.
        for idx, layer in enumerate(self._layers):
            x = self._inputs[idx]
            dims = [d for d in range(x.dim()) if d != 1]
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            loss = loss + torch.norm(mean - layer.running_mean, 2) + torch.norm(
                var - layer.running_var, 2)
        return self.loss_weight * loss
