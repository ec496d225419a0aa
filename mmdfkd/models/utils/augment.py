"""Per-sample augmentation of synthetic batches with torchvision.transforms.v2 (and
``RandomIntensityScale`` / ``RandomPatchErasing``, which v2 lacks for normalised batches)."""
import math
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.transforms import v2


class RandomIntensityScale(nn.Module):
    """Multiply each image's pixel intensities by its own random factor, in a teacher's
    normalised input space: a dimmer or brighter copy of the same object, whose black
    background stays black.

    torchvision's ``ColorJitter(brightness=...)`` does the same to ``[0, 1]`` images but
    clamps normalised ones to ``[0, 1]``, which erases everything below the mean. Here the
    pixels are taken back to ``[0, pixel_max]``, scaled, clamped there and normalised again.
    A batch ``(N, C, H, W)`` gets one factor per image, also inside ``BatchAugment``'s groups.

    Args:
        scale (tuple[float, float]): Range of the uniform factor.
        mean (list[float]): The normalisation's mean per channel (pixel scale, e.g. 0-255).
        std (list[float]): Its standard deviation per channel.
        pixel_max (float): The largest pixel value (255 for 8-bit images).
    """

    def __init__(self, scale: Sequence[float] = (0.5, 1.5), mean: Sequence[float] = (0., ),
                 std: Sequence[float] = (1., ), pixel_max: float = 255.) -> None:
        super().__init__()
        if len(scale) != 2 or not 0 <= scale[0] <= scale[1]:
            raise ValueError(f'RandomIntensityScale.scale must be (low, high) with 0 <= low <= '
                             f'high, got {scale}')
        self.scale, self.pixel_max = (float(scale[0]), float(scale[1])), float(pixel_max)
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float).view(-1, 1, 1),
                             persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float).view(-1, 1, 1),
                             persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` or ``(N, C, H, W)`` images, each scaled by its own factor."""
        mean, std = self.mean.to(images), self.std.to(images)
        pixels = (images * std + mean).clamp(0, self.pixel_max)
        count = images.size(0) if images.dim() == 4 else 1
        factor = torch.empty(count, device=images.device).uniform_(*self.scale)
        factor = factor.view(-1, 1, 1, 1) if images.dim() == 4 else factor.view(1, 1, 1)
        return ((pixels * factor).clamp(0, self.pixel_max) - mean) / std


class RandomPatchErasing(nn.Module):
    """Erase one random rectangle of each image to a pixel value (black by default), every
    image with its own draw, in a teacher's normalised input space.

    torchvision's ``RandomErasing`` takes its fill in the tensor's own units and draws one
    rectangle per call, so inside ``BatchAugment``'s groups every image of a group would lose
    the same patch, and a per-image loop costs a Python round trip per image. Here the
    rectangles of a whole batch are drawn at once as masks. Sizes follow ``RandomErasing``:
    an area fraction from ``scale`` and a log-uniform aspect ratio from ``ratio``; a side
    longer than the image is cut to it (``RandomErasing`` would redraw).

    Args:
        p (float): Probability that an image loses a patch.
        scale (tuple[float, float]): Range of the patch's area as a fraction of the image's.
        ratio (tuple[float, float]): Range of the patch's height / width.
        fill (float): The patch's pixel value (pixel scale, 0 = black).
        mean (list[float]): The normalisation's mean per channel (pixel scale).
        std (list[float]): Its standard deviation per channel.
    """

    def __init__(self, p: float = 0.5, scale: Sequence[float] = (0.02, 0.2),
                 ratio: Sequence[float] = (0.3, 3.3), fill: float = 0.,
                 mean: Sequence[float] = (0., ), std: Sequence[float] = (1., )) -> None:
        super().__init__()
        if not 0 <= p <= 1:
            raise ValueError(f'RandomPatchErasing.p must be in [0, 1], got {p}')
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f'RandomPatchErasing.scale must be (low, high) with 0 < low <= '
                             f'high <= 1, got {scale}')
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f'RandomPatchErasing.ratio must be (low, high) with 0 < low <= '
                             f'high, got {ratio}')
        self.p, self.scale = float(p), (float(scale[0]), float(scale[1]))
        self.log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        fill_value = (torch.tensor(float(fill)) - torch.tensor(mean, dtype=torch.float)) / \
            torch.tensor(std, dtype=torch.float)
        self.register_buffer('fill', fill_value.view(-1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(C, H, W)`` or ``(N, C, H, W)`` images, each with its own erased patch (or none)."""
        batch = images if images.dim() == 4 else images.unsqueeze(0)
        n, _, height, width = batch.shape
        device = batch.device
        area = torch.empty(n, device=device).uniform_(*self.scale) * height * width
        aspect = torch.empty(n, device=device).uniform_(*self.log_ratio).exp()
        patch_h = (area * aspect).sqrt().round().clamp(1, height)
        patch_w = (area / aspect).sqrt().round().clamp(1, width)
        top = (torch.rand(n, device=device) * (height - patch_h + 1)).floor()
        left = (torch.rand(n, device=device) * (width - patch_w + 1)).floor()
        rows = torch.arange(height, device=device).view(1, -1, 1)
        cols = torch.arange(width, device=device).view(1, 1, -1)
        mask = ((rows >= top.view(-1, 1, 1)) & (rows < (top + patch_h).view(-1, 1, 1))
                & (cols >= left.view(-1, 1, 1)) & (cols < (left + patch_w).view(-1, 1, 1)))
        mask &= (torch.rand(n, device=device) < self.p).view(-1, 1, 1)
        out = torch.where(mask.unsqueeze(1), self.fill.to(batch), batch)
        return out if images.dim() == 4 else out.squeeze(0)


# Transforms a pipeline may name besides torchvision.transforms.v2's.
EXTRA_TRANSFORMS = {'RandomIntensityScale': RandomIntensityScale,
                    'RandomPatchErasing': RandomPatchErasing}


class BatchAugment(nn.Module):
    """Apply a torchvision ``transforms.v2`` pipeline to a batch of image tensors.

    v2 transforms draw one set of random parameters per call, so calling them on a whole
    batch flips/crops all images alike. ``per_sample=True`` runs them per image instead (more
    diversity for the student); ``per_sample=False`` keeps one jitter for the batch (what
    DeepInversion does; differentiable, cheap).

    Per-image calls cost a Python round trip each (on a 2-core CPU, 35 ms of a 62 ms LeNet
    student step with 256 images); ``groups=G`` draws parameters once per group of the batch
    instead (``G`` calls), which keeps a mix of flips/crops in every batch and draws new ones
    for every batch.

    Args:
        transforms (list[dict]): ``dict(type=<name in torchvision.transforms.v2>, **kwargs)``,
            e.g. ``[dict(type='RandomHorizontalFlip'), dict(type='RandomCrop', size=32,
            padding=2)]``, or ``type='RandomIntensityScale'`` / ``'RandomPatchErasing'``
            (:class:`RandomIntensityScale`, :class:`RandomPatchErasing`).
        per_sample (bool): Independent random parameters for every image (or group).
        groups (int, optional): With ``per_sample``, the number of consecutive groups that
            share one draw; ``None`` = every image its own.
        key (str): The pipeline's config key, for error messages.
    """

    def __init__(self, transforms: list[dict], per_sample: bool = True,
                 groups: int | None = None, key: str = 'augment') -> None:
        super().__init__()
        ops = []
        for index, cfg in enumerate(transforms):
            cfg = dict(cfg)
            name = cfg.pop('type', None)
            kind = EXTRA_TRANSFORMS.get(name) or getattr(v2, name or '', None)
            if not name or not isinstance(kind, type):
                raise ValueError(f'{key}[{index}].type: unknown torchvision.transforms.v2 '
                                 f"transform '{name}' (mmdfkd adds "
                                 f"{', '.join(sorted(EXTRA_TRANSFORMS))})")
            ops.append(kind(**cfg))
        if groups is not None and groups < 1:
            raise ValueError(f'{key}_groups must be >= 1 (or None for per image), got {groups}')
        self.pipeline = v2.Compose(ops)
        self.per_sample = per_sample
        self.groups = groups

    def check_keeps_shape(self, image_shape: Sequence[int], key: str,
                          shape_key: str = 'model.synthesizer.image_shape') -> None:
        """Refuse a pipeline that does not give back images of ``image_shape``.

        A crop or resize sized for another resolution (the CIFAR recipes' 32 px crops after
        ``image_shape`` was raised for a 224 px model) would otherwise run silently: the models
        would be taught on crops of another size than they are tested at.

        Args:
            image_shape: ``(C, H, W)`` of the images the pipeline augments.
            key: The pipeline's config key, e.g. ``'model.student_augment'``.
            shape_key: The config key that sets ``image_shape``.

        Raises:
            ValueError: naming ``key``, the size entries to change and ``shape_key``.
        """
        shape = tuple(int(v) for v in image_shape)
        sized = [f'{key}.{i}.size' for i, op in enumerate(self.pipeline.transforms)
                 if hasattr(op, 'size')]
        size = shape[-1] if shape[-1] == shape[-2] else shape[-2:]
        fix = (f'Set {" / ".join(sized) or "its sizes"} to {size}, or {shape_key} to the '
               'size the pipeline is written for.')
        try:
            # The pipeline itself: one draw for the probe, whatever `groups` says.
            out = self.pipeline(torch.zeros(2, *shape))
        except (RuntimeError, ValueError, TypeError) as err:
            raise ValueError(f'{key} fails on images of {shape} ({shape_key}): "{err}". '
                             f'{fix}') from err
        if tuple(out.shape[1:]) != shape:
            raise ValueError(f'{key} turns the images of {shape} ({shape_key}) into '
                             f'{tuple(out.shape[1:])}, so the models would be taught on another '
                             f'size than they are tested at. {fix}')

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The augmented batch (N, C, H, W): one random draw per image (``per_sample``),
        per chunk with ``groups`` (the batch split into that many), or one for the batch.
        """
        if not self.per_sample:
            return self.pipeline(images)
        if self.groups is None:
            return torch.stack([self.pipeline(img) for img in images])
        return torch.cat([self.pipeline(chunk) for chunk in images.tensor_split(self.groups)])


class PartialMixup(nn.Module):
    """Blend the first ``ratio`` of a batch with randomly chosen images of the same batch
    (weights from ``Beta(alpha, alpha)``), keeping the rest as they are.

    For distillation, not supervised training: there are no labels to mix, the teacher labels
    the blends themselves, so the student also learns the teacher between the synthetic
    images (offline probes in docs/benchmarks.md: about +0.5 to +1.8 points on Fashion-MNIST).

    Args:
        ratio (float): Fraction of each batch that is blended, in ``(0, 1]``.
        alpha (float): Beta distribution parameter of the blend weight (1 = uniform).
    """

    def __init__(self, ratio: float = 0.5, alpha: float = 1.0) -> None:
        super().__init__()
        if not 0 < ratio <= 1 or alpha <= 0:
            raise ValueError('model.student_mixup needs 0 < ratio <= 1 and alpha > 0; got '
                             f'ratio={ratio}, alpha={alpha}.')
        self.ratio, self.alpha = ratio, alpha

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The batch with its first ``round(ratio * N)`` images blended with random partners."""
        n = images.size(0)
        m = int(round(self.ratio * n))
        if m == 0:
            return images
        lam = torch.distributions.Beta(self.alpha, self.alpha).sample((m, ))
        lam = lam.to(images).view(m, *([1] * (images.dim() - 1)))
        partners = images[torch.randint(0, n, (m, ), device=images.device)]
        return torch.cat([lam * images[:m] + (1 - lam) * partners, images[m:]])
