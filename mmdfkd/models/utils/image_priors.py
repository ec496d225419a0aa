"""Image priors of DIP-KD (Wang et al.): diverse synthetic images made without any teacher
gradient, for teachers that only answer with labels.

All functions draw from torch's *global* RNG (torchvision's v2 transforms do too), so one
``torch.manual_seed`` makes a whole batch reproducible; :func:`seeded` does that without
disturbing the caller's RNG. Pixels are in ``[0, 1]``.
"""
import inspect
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms import v2

from mmdfkd.registry import MODELS


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the previous state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def hierarchical_noise(n: int, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """Uniform noise drawn at scales ``2^d`` for ``d = 0..ceil(log2 max(H, W))``, each
    upsampled (bilinear) to ``H x W`` and mixed with per-image ``softmax(N(0, 1))`` weights:
    coarse blobs to fine grain in one image."""
    h, w = size
    depth = math.ceil(math.log2(max(h, w)))
    weights = torch.randn(n, depth + 1).softmax(1)
    out = torch.zeros(n, channels, h, w)
    for d in range(depth + 1):
        s = 2 ** d
        noise = torch.rand(n, channels, min(s, h), min(s, w))
        if noise.shape[-2:] != (h, w):
            noise = F.interpolate(noise, size=(h, w), mode='bilinear', align_corners=False)
        out += weights[:, d].view(n, 1, 1, 1) * noise
    return out


def gaussian_blur(images: torch.Tensor, kernel_size: int, sigma: float) -> torch.Tensor:
    """torchvision's ``gaussian_blur`` (same kernel, reflect padding, same values up to float
    rounding) computed as one depthwise convolution over all images and channels.

    torchvision convolves a batch with a single-channel kernel, which the CPU runs ~3x slower
    than the depthwise form; the semantic mask blurs every prior ~13 times and the elastic
    field once with a 17-tap kernel, which made them most of a prior's cost.
    """
    n, c, h, w = images.shape
    half = (kernel_size - 1) * 0.5
    taps = torch.exp(-0.5 * (torch.linspace(-half, half, kernel_size) / sigma) ** 2)
    taps = (taps / taps.sum()).to(images)
    kernel = (taps[:, None] * taps[None, :]).expand(n * c, 1, kernel_size, kernel_size)
    pad = kernel_size // 2
    padded = F.pad(images.reshape(1, n * c, h, w), [pad, pad, pad, pad], mode='reflect')
    return F.conv2d(padded, kernel, groups=n * c).view(n, c, h, w)


def semantic_mask(n: int, size: tuple[int, int], sigma: float = 1.5, tol: float = 1e-2,
                  max_steps: int = 30) -> torch.Tensor:
    """DIP-KD's semantic CutMix mask ``(N, 1, H, W)``: start from ``U(0, 1)`` noise and
    iterate *blur, then sharpen* with ``f(m) = 2m^2`` (``m < 0.5``) / ``1 - 2(m - 1)^2``
    until the mean update is below ``tol``: smooth, nearly binary blobs."""
    mask = torch.rand(n, 1, *size)
    kernel = 2 * math.ceil(2 * sigma) + 1
    for _ in range(max_steps):
        blurred = gaussian_blur(mask, kernel, sigma)
        sharpened = torch.where(blurred < 0.5, 2 * blurred ** 2, 1 - 2 * (blurred - 1) ** 2)
        delta = (sharpened - mask).abs().mean()
        mask = sharpened
        if delta < tol:
            break
    return mask


def monochrome(n: int, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """Flat images of one random intensity per channel."""
    return torch.rand(n, channels, 1, 1).expand(n, channels, *size).clone()


def random_rotation(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Rotate every image by its own angle in ``[-degrees, degrees]`` (bilinear, zero fill);
    one batched ``grid_sample`` instead of a per-image torchvision call."""
    n = images.size(0)
    angle = (torch.rand(n) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1),
                         torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode='bilinear', padding_mode='zeros',
                         align_corners=False)


def elastic(images: torch.Tensor, alpha: float, sigma: float) -> torch.Tensor:
    """Elastic distortion with a per-image displacement field (torchvision's
    ``ElasticTransform`` recipe: uniform ``[-1, 1]`` field, Gaussian-blurred with ``sigma``,
    scaled by ``alpha`` pixels), batched."""
    n, _, h, w = images.shape
    field = torch.rand(n, 2, h, w) * 2 - 1
    kernel = int(8 * sigma + 1) | 1
    field = gaussian_blur(field, kernel, sigma)
    field = field * alpha / torch.tensor([w, h]).view(1, 2, 1, 1)
    identity = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), [n, 1, h, w],
                             align_corners=False)
    grid = identity + field.permute(0, 2, 3, 1)
    return F.grid_sample(images, grid, mode='bilinear', padding_mode='border',
                         align_corners=False)


def random_zoom(images: torch.Tensor, zoom_range: tuple[float, float], aspect_sigma: float = 0.0,
                shift: float = 0.0) -> torch.Tensor:
    """Shrink every image by its own factor in ``zoom_range`` (a centred object with black
    margins), stretch it by a log-normal aspect ratio (``aspect_sigma``), shift it by up to
    ``shift`` of the half-size; black fill, one batched ``grid_sample``."""
    n = images.size(0)
    lo, hi = zoom_range
    scale = lo + (hi - lo) * torch.rand(n)
    sx = scale * torch.exp(torch.randn(n) * aspect_sigma)
    sy = scale * torch.exp(torch.randn(n) * aspect_sigma)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = 1 / sx, 1 / sy
    theta[:, :, 2] = (torch.rand(n, 2) * 2 - 1) * shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode='bilinear', padding_mode='zeros',
                         align_corners=False)


def grating_texture(n: int, size: tuple[int, int],
                    freq: tuple[float, float] = (6.0, 14.0)) -> torch.Tensor:
    """Per-image multiplicative texture ``(N, 1, H, W)`` in ``[0, 1]``: an oriented sinusoidal
    grating (orientation, phase uniform; ``freq`` cycles across the image's height), applied
    at a uniform depth ``d`` as ``1 - d * (0.5 + 0.5 sin(.))``. Oriented gratings are one of
    the generic procedural image models (stripes, checks, weaves) that plain noise blobs lack."""
    h, w = size
    rows = torch.arange(h, dtype=torch.float).view(1, h, 1)
    cols = torch.arange(w, dtype=torch.float).view(1, 1, w)
    angle = torch.rand(n, 1, 1) * math.pi
    cycles = (freq[0] + (freq[1] - freq[0]) * torch.rand(n, 1, 1)) / h
    phase = torch.rand(n, 1, 1) * 2 * math.pi
    wave = 0.5 + 0.5 * torch.sin(
        2 * math.pi * cycles * (cols * angle.cos() + rows * angle.sin()) + phase)
    depth = torch.rand(n, 1, 1)
    return (1 - depth * wave).unsqueeze(1)


def random_resized_crop(images: torch.Tensor, scale: tuple[float, float]) -> torch.Tensor:
    """torchvision's ``RandomResizedCrop`` per image, back to the input size: torchvision
    draws each image's box, one batched ``grid_sample`` resamples them all (bilinear, as
    torchvision's resize; the crop is never smaller than the image, so no antialiasing)."""
    n, _, h, w = images.shape
    crop = v2.RandomResizedCrop((h, w), scale=tuple(scale))
    theta = torch.zeros(n, 2, 3)
    for i, img in enumerate(images):
        box = crop.make_params([img])
        # the box's normalised extent and centre: output [-1, 1] -> input box
        theta[i, 0, 0] = box['width'] / w
        theta[i, 1, 1] = box['height'] / h
        theta[i, 0, 2] = (2 * box['left'] + box['width']) / w - 1
        theta[i, 1, 2] = (2 * box['top'] + box['height']) / h - 1
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode='bilinear', padding_mode='border',
                         align_corners=False)


def diverse_priors(n: int, channels: int, size: tuple[int, int], hierarchical: bool = True,
                   rotation: float = 0.0, elastic_alpha: float = 0.0,
                   elastic_sigma: float = 4.0, crop_scale: tuple[float, float] | None = None,
                   mix_prob: float = 0.5, monochrome_prob: float = 0.5,
                   mask_sigma: float = 1.5, background_prob: float = 0.0,
                   background_range: tuple[float, float] = (0.0, 0.1),
                   zoom_range: tuple[float, float] | None = None, aspect_sigma: float = 0.0,
                   shift: float = 0.0, texture_prob: float = 0.0,
                   texture_freq: tuple[float, float] = (6.0, 14.0)) -> torch.Tensor:
    """A batch of DIP-KD priors in ``[0, 1]``.

    1. hierarchical noise (plain ``U(0, 1)`` pixels with ``hierarchical=False``: the
       "naive KD on noise" baseline);
    2. per-image nonlinear transforms: rotation in ``[-rotation, rotation]`` degrees, elastic
       distortion (``elastic_alpha`` pixels, 0 = off), random resized crop (``crop_scale``);
    3. with probability ``mix_prob`` an image is semantically CutMixed with another prior or,
       with probability ``monochrome_prob`` of those, with a monochrome image;
    4. (our addition, off by default) with probability ``background_prob`` a second semantic
       mix with a dark monochrome image (intensity in ``background_range``), then a zoom-out
       (``zoom_range``), aspect jitter and shift with black fill: blob-shaped objects on a
       dark background, the layout of centred-object datasets such as Fashion-MNIST;
    5. (our addition, off by default) with probability ``texture_prob`` the image is
       multiplied by an oriented grating (:func:`grating_texture`, ``texture_freq`` cycles
       per image): fine stripes inside the objects. Drawn last, so the rest of a seeded
       batch is the same with and without it.
    """
    images = (hierarchical_noise(n, channels, size) if hierarchical else
              torch.rand(n, channels, *size))
    if rotation > 0:
        images = random_rotation(images, rotation)
    if elastic_alpha > 0:
        images = elastic(images, elastic_alpha, elastic_sigma)
    if crop_scale is not None:
        images = random_resized_crop(images, crop_scale)
    if mix_prob > 0:
        mixed = torch.rand(n) < mix_prob
        if mixed.any():
            k = int(mixed.sum())
            partners = images[torch.randperm(n)[:k]]
            flat = torch.rand(k) < monochrome_prob
            partners[flat] = monochrome(int(flat.sum()), channels, size)
            mask = semantic_mask(k, size, sigma=mask_sigma)
            images[mixed] = mask * images[mixed] + (1 - mask) * partners
    if background_prob > 0:
        dark = torch.rand(n) < background_prob
        if dark.any():
            k = int(dark.sum())
            lo, hi = background_range
            level = (lo + (hi - lo) * torch.rand(k, 1, 1, 1)).expand(k, channels, 1, 1)
            mask = semantic_mask(k, size, sigma=mask_sigma)
            images[dark] = mask * images[dark] + (1 - mask) * level
    if zoom_range is not None:
        images = random_zoom(images, zoom_range, aspect_sigma, shift)
    if texture_prob > 0:
        texture = grating_texture(n, size, texture_freq)
        textured = (torch.rand(n) < texture_prob).view(n, 1, 1, 1)
        images = torch.where(textured, images * texture, images)
    return images.clamp(0, 1)


@MODELS.register_module()
class ImagePriorGenerator(nn.Module):
    """:func:`diverse_priors` in a teacher's normalised input space.

    Shared by DIP-KD's :class:`ImagePriorSynthesizer` (priors labelled as they are) and
    DeepInversion's optional ``init`` (priors as starting points of the pixel optimisation,
    instead of Gaussian noise).

    Args:
        image_shape (tuple): ``(C, H, W)``.
        mean (list[float]): Teacher input normalisation (pixel scale 0-255), as in the
            ``data_preprocessor``.
        std (list[float]): Same, standard deviation.
        **prior_kwargs: Keyword arguments of :func:`diverse_priors` (``hierarchical``,
            ``rotation``, ``elastic_alpha``, ``zoom_range``, ...).
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 32, 32),
                 mean: list[float] = (0., ), std: list[float] = (255., ),
                 **prior_kwargs) -> None:
        super().__init__()
        if len(image_shape) != 3:
            raise ValueError(f'image_shape must be (C, H, W), got {image_shape}')
        unknown = set(prior_kwargs) - set(inspect.signature(diverse_priors).parameters)
        if unknown:
            raise TypeError(f'ImagePriorGenerator got unknown prior option(s) {sorted(unknown)}')
        self.image_shape = tuple(image_shape)
        self.prior_kwargs = {k: tuple(v) if isinstance(v, list) else v
                             for k, v in prior_kwargs.items()}
        c = self.image_shape[0]
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float).view(1, -1, 1, 1)
                             .expand(1, c, 1, 1).clone(), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float).view(1, -1, 1, 1)
                             .expand(1, c, 1, 1).clone(), persistent=False)

    @property
    def pixel_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised values of pixels 0 and 255 (per channel)."""
        return (0 - self.mean) / self.std, (255 - self.mean) / self.std

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[0, 1]`` pixels -> the teacher's input space, rounded to float16 as the pool
        stores them (so a pooled image asked again hits a teacher's label cache)."""
        images = (pixels.to(self.mean.device) * 255 - self.mean) / self.std
        return images.half().float()

    def forward(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` priors in the teacher's input space; reproducible when ``seed`` is given
        (the caller's random state is left alone)."""
        c, h, w = self.image_shape
        if seed is None:
            return self.normalise(diverse_priors(n, c, (h, w), **self.prior_kwargs))
        with seeded(seed):
            return self.normalise(diverse_priors(n, c, (h, w), **self.prior_kwargs))
