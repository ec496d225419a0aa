"""Wide residual networks for 32x32 inputs (Zagoruyko & Komodakis, 2016), e.g. WRN-40-2."""
import torch
import torch.nn.functional as F
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import nn

from mmdfkd.registry import MODELS


class _WideBasicBlock(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv x2) with an optional projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # The projection shortcut reads the pre-activated input, as in the reference WRN.
        identity = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = F.relu(self.bn2(out))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + identity


@MODELS.register_module()
class WideResNet(BaseBackbone):
    """CIFAR WideResNet-``depth``-``widen_factor``.

    Args:
        depth (int): 6n + 4, e.g. 16 or 40.
        widen_factor (int): Channel multiplier, e.g. 1 or 2.
        in_channels (int): Input channels.
        drop_rate (float): Dropout inside each block.
        out_indices (tuple[int]): Stages to return (0-2 are the three groups; the last one is
            followed by BN-ReLU).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, depth: int = 40, widen_factor: int = 2, in_channels: int = 3,
                 drop_rate: float = 0.0, out_indices: tuple[int, ...] = (2, ),
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if (depth - 4) % 6 != 0:
            raise ValueError(f'WideResNet depth must be 6n+4 (16, 22, 28, 40...), got {depth}')
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        groups = []
        cin = widths[0]
        for cout, stride in zip(widths[1:], (1, 2, 2)):
            blocks = [_WideBasicBlock(cin if j == 0 else cout, cout, stride if j == 0 else 1,
                                      drop_rate) for j in range(n)]
            groups.append(nn.Sequential(*blocks))
            cin = cout
        self.groups = nn.ModuleList(groups)
        self.bn = nn.BatchNorm2d(widths[-1])
        self.out_channels = widths[-1]
        self.out_indices = tuple(out_indices)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The outputs of the groups in ``out_indices`` (the last after its BN and ReLU)."""
        x = self.conv1(x)
        outs = []
        for i, group in enumerate(self.groups):
            x = group(x)
            if i == len(self.groups) - 1:
                x = F.relu(self.bn(x))
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
