"""LeNet-5 variants used by data-free KD papers (DAFL, ZSKD, DIP-KD)."""
import torch
from mmpretrain.models.backbones.base_backbone import BaseBackbone
from torch import nn

from mmdfkd.registry import MODELS


@MODELS.register_module()
class LeNet(BaseBackbone):
    """LeNet-5 for 1x32x32 inputs, returning the 84-d (times ``width``) penultimate feature.

    Unlike mmpretrain's ``LeNet5`` it has optional BatchNorm, a width multiplier and no
    built-in classifier.

    Two conv stages (5x5 conv, optional BatchNorm, ReLU, 2x2 max-pool) then two fully
    connected layers; the classifier is the mmpretrain head (``LinearClsHead``), so the model
    works as an ordinary ``ImageClassifier`` teacher or student.

    Args:
        in_channels (int): Input channels.
        width (float): Width multiplier; ``0.5`` gives DAFL's LeNet-5-half (3/8 conv channels,
            60/42 hidden units).
        with_bn (bool): Add BatchNorm after each conv (LeNet-5-BN). Teachers with BN give the
            statistics that BN-matching synthesizers need.
        out_indices (tuple[int]): Stages to return: 0 = conv1 block (C1x14x14), 1 = conv2
            block (C2x5x5), 2 = penultimate vector.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, in_channels: int = 1, width: float = 1.0, with_bn: bool = True,
                 out_indices: tuple[int, ...] = (2, ), init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        c1, c2 = max(1, round(6 * width)), max(1, round(16 * width))
        f1, f2 = max(1, round(120 * width)), max(1, round(84 * width))
        self.out_channels = f2

        def conv_block(cin: int, cout: int) -> nn.Sequential:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 5, bias=not with_bn)]
            if with_bn:
                layers.append(nn.BatchNorm2d(cout))
            layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            return nn.Sequential(*layers)

        self.conv1 = conv_block(in_channels, c1)
        self.conv2 = conv_block(c1, c2)
        self.fc = nn.Sequential(
            nn.Flatten(), nn.Linear(c2 * 5 * 5, f1), nn.ReLU(inplace=True),
            nn.Linear(f1, f2), nn.ReLU(inplace=True))
        for i in out_indices:
            if i not in (0, 1, 2):
                raise ValueError(f'LeNet out_indices must be in (0, 1, 2), got {out_indices}')
        self.out_indices = tuple(out_indices)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The outputs of the stages in ``out_indices`` for 32x32 inputs (N, C, 32, 32)."""
        # Skipped while tracing (ONNX export): the exported graph takes 32x32 only anyway, and
        # the Python check would be frozen into it with a TracerWarning.
        if not torch.jit.is_tracing() and x.shape[-2:] != (32, 32):
            raise ValueError(f'LeNet expects 32x32 inputs, got {tuple(x.shape[-2:])}; pad '
                             "28x28 images with dict(type='CenterPad', size=32).")
        outs = []
        for i, stage in enumerate((self.conv1, self.conv2, self.fc)):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return tuple(outs)
