"""Generator networks for data-free synthesis."""
import torch
from mmengine.model import BaseModule
from torch import nn

from mmdfkd.registry import MODELS


@MODELS.register_module()
class DCGANGenerator(BaseModule):
    """DCGAN-style generator used by DAFL, DFAD, ZSKT and CMI.

    ``z -> Linear -> (2*ngf) x s x s -> [Upsample x2, Conv3x3, BN, LeakyReLU] x2 -> Conv3x3
    -> Tanh -> BN(affine=False)`` with ``s = img_size // 4``. The final affine-free BN keeps the
    output roughly zero-mean/unit-variance, i.e. in the teacher's *normalised* input space.

    Args:
        latent_dim (int): Size of the noise vector ``z``.
        img_size (int): Output height/width; must be divisible by 4.
        channels (int): Output image channels.
        ngf (int): Base width; the widest layer has ``2 * ngf`` channels.
    """

    def __init__(self, latent_dim: int = 100, img_size: int = 32, channels: int = 3,
                 ngf: int = 64, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if img_size % 4:
            raise ValueError(f'DCGANGenerator img_size must be divisible by 4, got {img_size}')
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.init_size = img_size // 4
        self.project = nn.Sequential(
            nn.Linear(latent_dim, 2 * ngf * self.init_size**2))
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * ngf),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, 1, 1, bias=False),
            nn.BatchNorm2d(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, channels, 3, 1, 1),
            nn.Tanh(),
            nn.BatchNorm2d(channels, affine=False),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.size(0), -1, self.init_size, self.init_size)
        return self.body(x)
