"""Teacher BatchNorm-statistics matching (DeepInversion, CMI, Fast-DFKD, CPSC-DFKD, ...)."""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmdfkd.registry import MODELS
from .base import WeightedLoss
from .contrastive import instance_channel_means


@MODELS.register_module()
class BNStatisticsLoss(WeightedLoss):
    """Distance between a batch's BN-input statistics and the teacher's running statistics.

    ``sum_l ||mu_l(x) - running_mean_l||_2 + ||var_l(x) - running_var_l||_2`` (or a Gaussian
    KL, ``distance``) over every
    BatchNorm layer of the bound model. Call :meth:`bind` once with the teacher; forward hooks
    then keep a reference to each BN layer's latest input, and :meth:`forward` turns the
    inputs of the most recent teacher forward into the loss (so student-only steps pay nothing).

    With ``momentum > 0`` (Fast-DFKD's "BN momentum") the statistics compared with the
    running ones are ``(1 - m) * batch + m * EMA`` where the EMA of earlier batches' statistics
    is advanced by :meth:`update_momentum` once per synthesised batch: a single small batch
    then only has to be *consistent with* the teacher's statistics together with its
    predecessors. The EMA lives in buffers, so it is checkpointed and resumed.

    Args:
        loss_weight (float): Multiplier of the loss.
        momentum (float): EMA factor ``m`` in ``[0, 1)``; 0 disables it.
        first_layer_weight (float): Extra multiplier of the first BN layer's term (the
            official DeepInversion code's ``first_bn_multiplier``, 10 for its ImageNet runs):
            the first layer's statistics are the closest to pixel statistics.
        distance (str): ``'l2'`` (DeepInversion's norms above) or ``'gaussian_kl'``: per
            layer ``sum_c KL(N(mu_c, var_c) || N(running_mean_c, running_var_c))``, which
            divides every channel's deviation by its running variance, so low-variance
            channels and layers count as much as high-variance ones. On the Fashion-MNIST
            LeNet-5-BN teacher it lost 4 points (docs/benchmarks.md); it is there to try on
            other teachers.
    """

    DISTANCES = ('l2', 'gaussian_kl')

    def __init__(self, loss_weight: float = 1.0, momentum: float = 0.0,
                 first_layer_weight: float = 1.0, distance: str = 'l2') -> None:
        super().__init__(loss_weight)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f'BNStatisticsLoss momentum must be in [0, 1), got {momentum}')
        if distance not in self.DISTANCES:
            raise ValueError(f'BNStatisticsLoss distance must be one of {self.DISTANCES}, '
                             f'got {distance!r}')
        if first_layer_weight < 0:
            raise ValueError('BNStatisticsLoss first_layer_weight must be >= 0, got '
                             f'{first_layer_weight}')
        self.momentum = momentum
        self.first_layer_weight = first_layer_weight
        self.distance = distance
        self._last_stats: list[tuple[torch.Tensor, torch.Tensor]] = []
        # Plain lists, not ModuleLists: the BN layers belong to the teacher's state dict.
        self._layers: list[_BatchNorm] = []
        self._inputs: dict[int, torch.Tensor] = {}
        self._handles: list = []
        # On the module's device, for the switched-off term (see bind).
        self.register_buffer('zero', torch.zeros(()), persistent=False)

    def bind(self, model: nn.Module) -> 'BNStatisticsLoss':
        """Attach forward hooks to every BatchNorm layer of ``model``.

        A model without BatchNorm (LayerNorm transformers, ConvNeXt) has no running
        statistics to match: it is refused unless ``loss_weight`` is 0, which turns the term
        off (:meth:`forward` then gives 0 and nothing is hooked).
        """
        for handle in self._handles:
            handle.remove()
        self._handles, self._inputs = [], {}
        self._layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        if not self._layers:
            if self.loss_weight == 0:
                return self
            backbone = getattr(model, 'backbone', model)
            raise ValueError(
                f'model.synthesizer.bn: the teacher ({type(backbone).__name__}) has no '
                'BatchNorm layer, so it has no running statistics to match. Set '
                'model.synthesizer.bn.loss_weight=0 to synthesise without that term (the '
                'images then lean on the other terms alone), or use a method that needs no BN '
                'statistics: DAFL, DFAD, ZSKT or DIP-KD.')
        for idx, layer in enumerate(self._layers):
            self._handles.append(layer.register_forward_hook(self._make_hook(idx)))
            if self.momentum:
                self.register_buffer(f'ema_mean_{idx}', torch.zeros_like(layer.running_mean))
                self.register_buffer(f'ema_var_{idx}', torch.ones_like(layer.running_var))
        if self.momentum:
            self.register_buffer('ema_initialised', torch.zeros((), dtype=torch.bool))
        return self

    @property
    def num_features(self) -> int:
        """Total channels over the bound BN layers (size of :meth:`instance_features`)."""
        return sum(layer.num_features for layer in self._layers)

    def _make_hook(self, idx: int):

        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self._inputs[idx] = inputs[0]

        return hook

    def forward(self) -> torch.Tensor:
        """Weighted distance between the last batch's BN inputs and the teacher's statistics.

        The bound teacher must have run on the batch since the last call (its hooks hold the
        inputs); a loss switched off with weight 0 on a BN-free teacher returns zero.
        """
        if not self._layers and self.loss_weight == 0:
            return self.zero  # switched off for a teacher without BatchNorm
        if len(self._inputs) != len(self._layers) or not self._layers:
            raise RuntimeError('BNStatisticsLoss: run the bound teacher on the batch first.')
        loss = 0.
        self._last_stats = []
        use_ema = self.momentum and bool(self.ema_initialised)
        for idx, layer in enumerate(self._layers):
            x = self._inputs[idx].float()  # float16 under --amp: its variance may overflow
            dims = [d for d in range(x.dim()) if d != 1]
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            self._last_stats.append((mean.detach(), var.detach()))
            if use_ema:
                m = self.momentum
                mean = (1 - m) * mean + m * getattr(self, f'ema_mean_{idx}')
                var = (1 - m) * var + m * getattr(self, f'ema_var_{idx}')
            if self.distance == 'gaussian_kl':
                # eps as in BatchNorm's own normalisation: a dead channel's zero variance
                # would make the log infinite.
                eps = layer.eps
                v, rv = var + eps, layer.running_var + eps
                term = 0.5 * (torch.log(rv / v) + (v + (mean - layer.running_mean) ** 2) / rv
                              - 1).sum()
            else:
                term = torch.norm(mean - layer.running_mean, 2) + torch.norm(
                    var - layer.running_var, 2)
            loss = loss + (self.first_layer_weight * term if idx == 0 else term)
        return self.loss_weight * loss

    @torch.no_grad()
    def update_momentum(self) -> None:
        """Fold the statistics of the last :meth:`forward` into the EMA (no-op without
        momentum)."""
        if not self.momentum or not self._last_stats:
            return
        first = not bool(self.ema_initialised)
        for idx, (mean, var) in enumerate(self._last_stats):
            ema_mean, ema_var = getattr(self, f'ema_mean_{idx}'), getattr(self, f'ema_var_{idx}')
            if first:
                ema_mean.copy_(mean)
                ema_var.copy_(var)
            else:
                ema_mean.mul_(self.momentum).add_((1 - self.momentum) * mean)
                ema_var.mul_(self.momentum).add_((1 - self.momentum) * var)
        self.ema_initialised.fill_(True)

    def instance_features(self) -> torch.Tensor:
        """Per-image channel means of every bound BN layer's latest input, concatenated:
        shape ``(N, num_features)``; CMI's instance embedding. Differentiable."""
        if len(self._inputs) != len(self._layers) or not self._layers:
            raise RuntimeError('BNStatisticsLoss: run the bound teacher on the batch first.')
        return instance_channel_means([self._inputs[i] for i in range(len(self._layers))])
