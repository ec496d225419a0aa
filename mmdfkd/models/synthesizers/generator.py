"""Generator networks for data-free synthesis."""
from typing import Any

import torch
from mmengine.model import BaseModule
from torch import nn
from torch.autograd.function import once_differentiable

from mmdfkd.registry import MODELS


class _NearestUpsample2xFunction(torch.autograd.Function):
    """``nn.Upsample(scale_factor=2)`` (nearest), written as a broadcast. Inside a training
    iteration on the 2-core CPU PyTorch's nearest-upsampling kernel took ~10 % of the time of
    the generator recipes (profiled on the CPSC-DFKD editor row); this is several times
    cheaper. The backward adds each 2 x 2 block in the order PyTorch's kernel does, so
    outputs *and* gradients are bitwise those of ``nn.Upsample`` and recorded runs
    reproduce."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        n, c, h, w = x.shape
        return x[:, :, :, None, :, None].expand(n, c, h, 2, w, 2).reshape(n, c, 2 * h, 2 * w)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        n, c, h2, w2 = grad.shape
        blocks = grad.reshape(n, c, h2 // 2, 2, w2 // 2, 2)
        return (((blocks[:, :, :, 0, :, 0] + blocks[:, :, :, 0, :, 1])
                 + blocks[:, :, :, 1, :, 0]) + blocks[:, :, :, 1, :, 1])


class NearestUpsample2x(nn.Module):
    """Nearest-neighbour upsampling by 2 of ``(N, C, H, W)`` tensors: the results of
    ``nn.Upsample(scale_factor=2)``, faster on CPU (see :class:`_NearestUpsample2xFunction`).
    It has no parameters, so it replaced ``nn.Upsample`` without changing state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each pixel repeated 2x2: (N, C, H, W) -> (N, C, 2H, 2W)."""
        if x.dim() != 4:
            raise ValueError(f'NearestUpsample2x expects (N, C, H, W) tensors, got shape '
                             f'{tuple(x.shape)}')
        return _NearestUpsample2xFunction.apply(x)


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
        """Batch statistics reset; every class's scale back to 1 and shift to 0."""
        self.bn.reset_parameters()
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Normalise (N, C, H, W) ``x`` by the batch, then scale and shift it per label."""
        out = self.bn(x)
        return out * self.gamma(labels)[:, :, None, None] + self.beta(labels)[:, :, None, None]


class _LabelConditionedGenerator(BaseModule):
    """What the DCGAN and the image editor share: noise (times a label embedding when
    class-conditional) and BN layers that are :class:`ConditionalBatchNorm2d` when
    ``num_classes`` is given."""

    def __init__(self, latent_dim: int, img_size: int, channels: int,
                 num_classes: int | None, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.latent_dim, self.img_size, self.channels = latent_dim, img_size, channels
        self.num_classes = num_classes
        self.label_embedding: nn.Embedding | None = None

    def _make_label_embedding(self) -> None:
        # called by each subclass where it always built it: the order in which modules
        # are created sets their initial weights under a seed, and recorded runs rely on it
        if self.num_classes:
            self.label_embedding = nn.Embedding(self.num_classes, self.latent_dim)

    def _norm(self, c: int, affine: bool = True) -> nn.Module:
        if self.num_classes:
            return ConditionalBatchNorm2d(c, self.num_classes)
        return nn.BatchNorm2d(c, affine=affine)

    @property
    def conditional(self) -> bool:
        return self.label_embedding is not None

    def sample_latent(self, n: int, device: torch.device | str = 'cpu') -> torch.Tensor:
        """``n`` latent codes ``z ~ N(0, I)``."""
        return torch.randn(n, self.latent_dim, device=device)

    def _embed_labels(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.conditional:
            return z
        if labels is None:
            raise ValueError(f'this {type(self).__name__} is class-conditional (num_classes='
                             f'{self.num_classes}): call it with labels.')
        return z * self.label_embedding(labels)

    @staticmethod
    def _run(layers: nn.ModuleList, x: torch.Tensor,
             labels: torch.Tensor | None) -> torch.Tensor:
        for layer in layers:
            x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm2d) else layer(x)
        return x


@MODELS.register_module()
class DCGANGenerator(_LabelConditionedGenerator):
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
        if img_size % 4:
            raise ValueError(f'DCGANGenerator img_size must be divisible by 4, got {img_size}')
        super().__init__(latent_dim, img_size, channels, num_classes, init_cfg=init_cfg)
        self.init_size = img_size // 4
        # (a Sequential, a ModuleList below: state-dict keys of earlier checkpoints stay valid)
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * ngf * self.init_size**2))
        self._make_label_embedding()
        norm = self._norm
        self.body = nn.ModuleList([
            norm(2 * ngf),
            NearestUpsample2x(),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, 1, 1, bias=False),
            norm(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True),
            NearestUpsample2x(),
            nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False),
            norm(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, channels, 3, 1, 1),
            nn.Tanh(),
            norm(channels, affine=False),
        ])

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, channels, img_size, img_size) from codes (N, latent_dim); ``labels`` (N,)
        are required when the generator is class-conditional and ignored otherwise.
        """
        z = self._embed_labels(z, labels)
        x = self.project(z).view(z.size(0), -1, self.init_size, self.init_size)
        return self._run(self.body, x, labels)


@MODELS.register_module()
class ConditionalImageEditor(_LabelConditionedGenerator):
    """A class-conditional image-to-image generator (our addition): draws a residual for a
    given image, a noise vector and a label, ``forward(z, labels, image)``.

    :class:`PriorResidualGenerator` with a :class:`DCGANGenerator` inside adds the same
    kind of class texture to every prior, whatever the prior looks like. This network sees
    the prior, so it can learn per-image edits (an amortised version of DeepInversion's
    per-image pixel steps):
    ``image -> Conv3x3 -> BN -> LReLU`` (full size, kept as a skip),
    ``-> Conv4x4/2 -> BN -> LReLU`` (half size), concatenated with the projected noise,
    ``-> Conv3x3 -> BN -> LReLU -> Upsample x2 -> Conv3x3 -> BN -> LReLU``, concatenated with
    the skip, ``-> Conv3x3 -> Tanh -> BN``. With ``num_classes`` every BN is a
    :class:`ConditionalBatchNorm2d` and the noise is multiplied by a label embedding, as in
    the conditional :class:`DCGANGenerator`; the last BN keeps the output about unit
    variance, so ``residual_scale`` means the same for both.

    Args:
        latent_dim (int): Size of the noise vector.
        img_size (int): Height/width of the images it edits; must be even.
        channels (int): Image channels (input and output).
        ngf (int): Base width; the half-size layers have ``2 * ngf`` channels.
        num_classes (int, optional): Make the editor conditional on labels.
        context_branch (bool): Add a quarter-size branch to the half-size features
            (``Conv4x4/2 -> BN -> LReLU -> Conv3x3 -> BN -> LReLU -> Upsample x2``, ``4 * ngf``
            then ``2 * ngf`` channels, added to them): each output pixel then sees a 28-pixel
            window of the image (most of a Fashion-MNIST garment) instead of 14 pixels, at
            a fraction of a full-size layer's cost. ``img_size`` must then be divisible by 4.
    """

    #: tells :class:`PriorResidualGenerator` to pass the image it edits
    edits_image = True

    def __init__(self, latent_dim: int = 100, img_size: int = 32, channels: int = 3,
                 ngf: int = 32, num_classes: int | None = None, context_branch: bool = False,
                 init_cfg: dict | None = None) -> None:
        if img_size % 2:
            raise ValueError(f'ConditionalImageEditor img_size must be even, got {img_size}')
        if context_branch and img_size % 4:
            raise ValueError('ConditionalImageEditor with context_branch=True needs img_size '
                             f'divisible by 4, got {img_size}')
        super().__init__(latent_dim, img_size, channels, num_classes, init_cfg=init_cfg)
        self.half_size = img_size // 2
        self._make_label_embedding()
        norm = self._norm
        self.project = nn.Linear(latent_dim, ngf * self.half_size**2)
        self.encode_full = nn.ModuleList([
            nn.Conv2d(channels, ngf, 3, 1, 1, bias=False), norm(ngf),
            nn.LeakyReLU(0.2, inplace=True)])
        self.encode_half = nn.ModuleList([
            nn.Conv2d(ngf, 2 * ngf, 4, 2, 1, bias=False), norm(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True)])
        self.decode_half = nn.ModuleList([
            nn.Conv2d(3 * ngf, 2 * ngf, 3, 1, 1, bias=False), norm(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True), NearestUpsample2x(),
            nn.Conv2d(2 * ngf, ngf, 3, 1, 1, bias=False), norm(ngf),
            nn.LeakyReLU(0.2, inplace=True)])
        self.decode_full = nn.ModuleList([
            nn.Conv2d(2 * ngf, channels, 3, 1, 1), nn.Tanh(), norm(channels, affine=False)])
        # created last: without it the editor's initial weights under a seed are unchanged
        self.context: nn.ModuleList | None = None
        if context_branch:
            self.context = nn.ModuleList([
                nn.Conv2d(2 * ngf, 4 * ngf, 4, 2, 1, bias=False), norm(4 * ngf),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(4 * ngf, 2 * ngf, 3, 1, 1, bias=False), norm(2 * ngf),
                nn.LeakyReLU(0.2, inplace=True), NearestUpsample2x()])

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None,
                image: torch.Tensor | None = None) -> torch.Tensor:
        """An edit of ``image`` (N, channels, img_size, img_size) from codes (N, latent_dim) and,
        when class-conditional, ``labels`` (N,): a U-Net-like pass that sees the image at full
        and half size and mixes the noise in at half size.
        """
        if image is None:
            raise ValueError('ConditionalImageEditor edits an image: call it with image= '
                             '(use it inside PriorResidualGenerator, which passes the prior).')
        expected = (self.channels, self.img_size, self.img_size)
        if tuple(image.shape[1:]) != expected:
            raise ValueError(f'ConditionalImageEditor expects images of shape {expected}, '
                             f'got {tuple(image.shape[1:])}')
        z = self._embed_labels(z, labels)
        noise_map = self.project(z).view(z.size(0), -1, self.half_size, self.half_size)
        full = self._run(self.encode_full, image, labels)
        half = self._run(self.encode_half, full, labels)
        if self.context is not None:
            half = half + self._run(self.context, half, labels)
        half = self._run(self.decode_half, torch.cat([half, noise_map], 1), labels)
        return self._run(self.decode_full, torch.cat([half, full], 1), labels)


@MODELS.register_module()
class PriorResidualGenerator(BaseModule):
    """A generator whose samples are DIP-KD image priors plus a learned residual (our
    addition): ``G(z) = prior + residual_scale * inner(noise[, labels])``.

    Generator-based methods start from images that look like nothing (``inner(noise)`` of an
    untrained DCGAN); DeepInversion started from image priors instead of noise gained most of
    its accuracy on Fashion-MNIST (``docs/benchmarks.md``). This lets CPSC-DFKD and Fast-DFKD
    start from the same priors: the prior's pixels are the first ``C*H*W`` entries of the
    latent code and the inner generator's noise the rest, so a synthesizer that optimises
    ``z`` (Fast-DFKD's inner loop) also moves the prior's pixels (at ``lr_z``), and one that
    only samples ``z`` (CPSC-DFKD) gets a new prior per sample. The inner generator learns
    what to add to the priors (class-dependent when it is conditional).

    Args:
        generator (dict): Inner generator config, e.g. ``DCGANGenerator`` (its ``channels``
            and ``img_size`` must match ``prior.image_shape``).
        prior (dict): ``ImagePriorGenerator`` config (in the teacher's normalised space).
        residual_scale (float): Scale of the inner generator's output (the DCGAN ends with a
            BN, so about unit variance before scaling).
        edit_passes (int): With an inner generator that edits images
            (:class:`ConditionalImageEditor`), apply it this many times, each pass to the
            previous pass's output with the same noise and label (``x <- x + scale *
            inner(noise, y, image=x)``), as DeepInversion takes several pixel steps.
    """

    def __init__(self, generator: dict, prior: dict, residual_scale: float = 0.3,
                 edit_passes: int = 1, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.inner = MODELS.build(generator)
        self.prior = MODELS.build(prior)
        shape = (self.inner.channels, self.inner.img_size, self.inner.img_size)
        if tuple(self.prior.image_shape) != shape:
            raise ValueError(f'model.synthesizer.generator.prior.image_shape '
                             f'{tuple(self.prior.image_shape)} must equal the inner '
                             f'generator\'s (channels, img_size, img_size) {shape}')
        if residual_scale < 0:
            raise ValueError('model.synthesizer.generator.residual_scale must be >= 0, got '
                             f'{residual_scale}')
        self.residual_scale = residual_scale
        edits_image = getattr(self.inner, 'edits_image', False)
        if edit_passes < 1 or (edit_passes > 1 and not edits_image):
            raise ValueError('model.synthesizer.generator.edit_passes must be 1, or more with '
                             'an inner generator that edits images (ConditionalImageEditor); '
                             f'got {edit_passes} with {type(self.inner).__name__}')
        self.edit_passes = edit_passes
        self.img_size, self.channels = self.inner.img_size, self.inner.channels
        self.num_classes = getattr(self.inner, 'num_classes', None)
        self.prior_dim = self.channels * self.img_size ** 2
        self.noise_dim = self.inner.latent_dim
        self.latent_dim = self.prior_dim + self.noise_dim

    @property
    def conditional(self) -> bool:
        """Whether the inner generator takes labels."""
        return bool(getattr(self.inner, 'conditional', False))

    def sample_latent(self, n: int, device: torch.device | str = 'cpu') -> torch.Tensor:
        """``n`` codes ``[flattened prior, noise]``: fresh priors, ``noise ~ N(0, I)``."""
        priors = self.prior(n).to(device).flatten(1)
        return torch.cat([priors, torch.randn(n, self.noise_dim, device=device)], 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images from codes ``[flattened prior, noise]`` (see :meth:`sample_latent`): the prior
        plus ``residual_scale`` times the inner generator's output, ``edit_passes`` times for an
        image editor; ``labels`` (N,) go to a conditional inner generator.
        """
        if z.size(1) != self.latent_dim:
            raise ValueError(f'PriorResidualGenerator expects codes of size {self.latent_dim} '
                             f'(prior {self.prior_dim} + noise {self.noise_dim}), got '
                             f'{z.size(1)}; draw them with sample_latent().')
        priors, noise = z.split([self.prior_dim, self.noise_dim], 1)
        priors = priors.view(-1, self.channels, self.img_size, self.img_size)
        images = priors
        for _ in range(self.edit_passes):
            inner_kwargs = ({'image': images} if getattr(self.inner, 'edits_image', False)
                            else {})
            residual = (self.inner(noise, labels, **inner_kwargs) if self.conditional
                        else self.inner(noise, **inner_kwargs))
            images = images + self.residual_scale * residual
        return images


def sample_latent(generator: nn.Module, n: int,
                  device: torch.device | str = 'cpu') -> torch.Tensor:
    """Latent codes for ``generator``: its own ``sample_latent`` when it has one (structured
    codes such as :class:`PriorResidualGenerator`'s), else ``N(0, I)`` of ``latent_dim``."""
    if hasattr(generator, 'sample_latent'):
        return generator.sample_latent(n, device)
    return torch.randn(n, generator.latent_dim, device=device)
