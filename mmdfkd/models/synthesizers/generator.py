"""Generator networks for data-free synthesis."""
import torch
from mmengine.model import BaseModule
from torch import nn

from mmdfkd.registry import MODELS


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose affine scale and shift are looked up per class label.

    Normalisation uses the batch statistics shared by all classes; ``gamma_y`` and ``beta_y``
    then give each class its own feature distribution (CPSC-DFKD's "categorical BN").

    Args:
        num_features (int): Channels.
        num_classes (int): Number of labels.
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gamma = nn.Embedding(num_classes, num_features)
        self.beta = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def reset_parameters(self) -> None:
        self.bn.reset_parameters()
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        return out * self.gamma(labels)[:, :, None, None] + self.beta(labels)[:, :, None, None]


@MODELS.register_module()
class DCGANGenerator(BaseModule):
    """DCGAN-style generator used by DAFL, DFAD, ZSKT, CMI, Fast-DFKD and CPSC-DFKD.

    ``z -> Linear -> (2*ngf) x s x s -> BN -> [Upsample x2, Conv3x3, BN, LeakyReLU] x2 ->
    Conv3x3 -> Tanh -> BN`` with ``s = img_size // 4``. The final BN (affine-free when
    unconditional) keeps the output roughly zero-mean/unit-variance, i.e. in the teacher's
    *normalised* input space.

    With ``num_classes`` the generator is class-conditional (CPSC-DFKD): ``z`` is multiplied
    by a learned label embedding and every BN is a :class:`ConditionalBatchNorm2d`, so
    ``forward(z, labels)`` gives each class its own feature distribution.

    Args:
        latent_dim (int): Size of the noise vector ``z``.
        img_size (int): Output height/width; must be divisible by 4.
        channels (int): Output image channels.
        ngf (int): Base width; the widest layer has ``2 * ngf`` channels.
        num_classes (int, optional): Make the generator conditional on labels.
    """

    def __init__(self, latent_dim: int = 100, img_size: int = 32, channels: int = 3,
                 ngf: int = 64, num_classes: int | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if img_size % 4:
            raise ValueError(f'DCGANGenerator img_size must be divisible by 4, got {img_size}')
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.num_classes = num_classes
        self.init_size = img_size // 4
        # (a Sequential, a ModuleList below: state-dict keys of earlier checkpoints stay valid)
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * ngf * self.init_size**2))
        self.label_embedding = (nn.Embedding(num_classes, latent_dim)
                                if num_classes else None)

        def norm(c: int, affine: bool = True) -> nn.Module:
            if num_classes:
                return ConditionalBatchNorm2d(c, num_classes)
            return nn.BatchNorm2d(c, affine=affine)

        self.body = nn.ModuleList([
            norm(2 * ngf),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, 1, 1, bias=False),
            norm(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False),
            norm(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, channels, 3, 1, 1),
            nn.Tanh(),
            norm(channels, affine=False),
        ])

    @property
    def conditional(self) -> bool:
        return self.label_embedding is not None

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if labels is None:
                raise ValueError('this DCGANGenerator is class-conditional (num_classes='
                                 f'{self.num_classes}): call it with labels.')
            z = z * self.label_embedding(labels)
        x = self.project(z).view(z.size(0), -1, self.init_size, self.init_size)
        for layer in self.body:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x
