"""DIP-KD's synthesis: diverse image priors labelled by a (black-box) teacher."""
from typing import TYPE_CHECKING

import torch
from mmengine.optim import OptimWrapper

from mmdfkd.models.utils.image_priors import ImagePriorGenerator
from mmdfkd.registry import MODELS
from .base import PooledSynthesizer

if TYPE_CHECKING:
    from mmdfkd.models.algorithms import DIPKD


def draw_differing_pairs(labels: torch.Tensor, n: int, generator: torch.Generator,
                         balanced: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(first, second)`` of ``n`` pairs of labelled images whose labels differ
    (pairs with equal labels only when too few differ, e.g. a one-class pool).

    Args:
        labels (torch.Tensor): The teacher's label of every candidate image.
        n (int): Pairs to draw.
        generator (torch.Generator): Random source (the draw is reproducible).
        balanced (bool): Draw both members with every label equally likely, so rare
            classes take part as often as common ones (``False``: uniformly over images).
    """
    if balanced:
        weights = 1.0 / torch.bincount(labels).float()[labels]
        first, second = torch.multinomial(weights, 8 * n, replacement=True,
                                          generator=generator).view(2, 4 * n)
    else:
        first, second = torch.randint(len(labels), (2, 4 * n), generator=generator)
    # Differing pairs first, in draw order; equal-label pairs fill any shortfall.
    order = torch.argsort((labels[first] == labels[second]).long(), stable=True)[:n]
    return first[order], second[order]


@MODELS.register_module()
class ImagePriorSynthesizer(PooledSynthesizer):
    """Make ``num_images`` diverse priors (:func:`diverse_priors`: hierarchical noise,
    rotation/elastic/crop, semantic CutMix with priors or monochrome images), each labelled
    by the teacher's top-1 answer (one query per image), into the shared data pool.

    No teacher gradient is used, so a hard-label teacher is enough. Batch ``k`` is generated
    under seed ``seed + k``: the same config makes the same images, and a resumed run
    continues the sequence. :meth:`sample_labelled` draws class-balanced batches (every class
    equally likely by its teacher label) so the classes the priors rarely hit still count.

    Args:
        image_shape (tuple): ``(C, H, W)``.
        batch_size (int): Priors generated and labelled per :meth:`synthesize` call.
        num_images (int): Pool size to reach (= teacher queries of this phase).
        mean (list[float]): Teacher input normalisation (pixel scale 0-255), as in the
            ``data_preprocessor``.
        std (list[float]): Same, standard deviation.
        hierarchical (bool): Multi-scale noise (``False``: plain uniform noise).
        rotation (float): Max rotation in degrees.
        elastic_alpha (float): Elastic displacement in pixels (0 = off).
        elastic_sigma (float): Smoothness of the elastic field.
        crop_scale (tuple, optional): ``RandomResizedCrop`` scale range (``None`` = off).
        mix_prob (float): Fraction of priors semantically CutMixed with a partner.
        monochrome_prob (float): Fraction of partners that are monochrome images.
        mask_sigma (float): Blur of the CutMix mask iteration (larger = bigger blobs).
        background_prob (float): Fraction of priors put on a dark background (second semantic
            mix with a dark monochrome image; our addition, see :func:`diverse_priors`).
        background_range (tuple): Intensity range of that background.
        zoom_range (tuple, optional): Zoom-out factors (black margins); ``None`` = off.
        aspect_sigma (float): Log-normal aspect-ratio jitter of the zoom.
        shift (float): Random shift after the zoom (fraction of the half-size).
        texture_prob (float): Fraction of priors multiplied by an oriented grating (fine
            stripes inside the objects; our addition, 0 = off).
        texture_freq (tuple): Range of the grating's cycles per image height.
        label_mix (float): Fraction of ``num_images`` bought as mixes (``label_mix_mode``)
            of two priors already in the pool whose teacher labels *differ* (our addition,
            not in the paper). They are made after the plain priors, each costs one query
            like any prior (a mix identical to an earlier one is answered by the label
            cache), and they land between the teacher's classes, where plain priors rarely
            do. 20K-label probe, four seeds (docs/benchmarks.md): 74.7 % without; with
            ``label_mix=0.7``: blends 77.2 %, blends of balanced pairs 77.7 %, overlays of
            balanced pairs 79.8 %.
        label_mix_lam (tuple): Range of the blend weight ``lam`` (uniform).
        label_mix_mode (str): ``'blend'`` (``lam * a + (1 - lam) * b``) or ``'overlay'``
            (pixel-wise maximum: on a dark background both objects stay visible, the
            brighter one on top; ``label_mix_lam`` is unused).
        label_mix_balanced (bool): Draw the two priors of a blend with every teacher label
            equally likely (rare classes take part as often as common ones) instead of
            uniformly over the pool.
        balanced (bool): Class-balanced :meth:`sample_labelled`.
        seed (int): Base seed of the prior sequence.
        pool (dict, optional): ``SyntheticDataPool`` config.
    """

    method_name = 'DIP-KD'
    required_access = 'hard-label'

    def __init__(self, image_shape: tuple[int, int, int] = (1, 32, 32), batch_size: int = 500,
                 num_images: int = 50000, mean: list[float] = (0., ), std: list[float] = (255., ),
                 hierarchical: bool = True, rotation: float = 45.0, elastic_alpha: float = 3.0,
                 elastic_sigma: float = 2.0, crop_scale: tuple[float, float] | None = (0.5, 1.0),
                 mix_prob: float = 0.5, monochrome_prob: float = 0.5, mask_sigma: float = 1.5,
                 background_prob: float = 0.0, background_range: tuple[float, float] = (0.0, 0.1),
                 zoom_range: tuple[float, float] | None = None, aspect_sigma: float = 0.0,
                 shift: float = 0.0, texture_prob: float = 0.0,
                 texture_freq: tuple[float, float] = (6.0, 14.0), label_mix: float = 0.0,
                 label_mix_lam: tuple[float, float] = (0.2, 0.8),
                 label_mix_balanced: bool = False, label_mix_mode: str = 'blend',
                 balanced: bool = True,
                 seed: int = 0, pool: dict | None = None, init_cfg: dict | None = None) -> None:
        pool = pool or dict(type='SyntheticDataPool')
        pool.setdefault('max_images', num_images)
        super().__init__(pool=pool, init_cfg=init_cfg)
        if not 0 <= mix_prob <= 1 or not 0 <= monochrome_prob <= 1:
            raise ValueError('model.synthesizer.mix_prob and monochrome_prob must be in [0, 1]')
        if not 0 <= texture_prob <= 1 or not 0 < texture_freq[0] <= texture_freq[1]:
            raise ValueError('model.synthesizer.texture_prob must be in [0, 1] and texture_freq '
                             f'(low, high) with 0 < low <= high, got {texture_prob}, '
                             f'{texture_freq}')
        if not 0 <= label_mix < 1:
            raise ValueError('model.synthesizer.label_mix is the fraction of num_images bought '
                             f'as blends of labelled priors; it must be in [0, 1), got {label_mix}')
        if not 0 <= label_mix_lam[0] <= label_mix_lam[1] <= 1:
            raise ValueError('model.synthesizer.label_mix_lam must be (low, high) with '
                             f'0 <= low <= high <= 1, got {label_mix_lam}')
        if label_mix_mode not in ('blend', 'overlay'):
            raise ValueError("model.synthesizer.label_mix_mode must be 'blend' or 'overlay', "
                             f"got '{label_mix_mode}'")
        if len(image_shape) != 3:
            raise ValueError(f'model.synthesizer.image_shape must be (C, H, W), got {image_shape}')
        if zoom_range is not None and not 0 < zoom_range[0] <= zoom_range[1]:
            raise ValueError('model.synthesizer.zoom_range must be None or (low, high) scale '
                             f'factors with 0 < low <= high, got {zoom_range}')
        if batch_size < 1 or num_images < 1:
            raise ValueError('model.synthesizer.batch_size and num_images must be >= 1, got '
                             f'{batch_size} and {num_images}')
        self.image_shape = tuple(image_shape)
        self.batch_size, self.num_images = batch_size, num_images
        self.priors = ImagePriorGenerator(
            image_shape, mean, std, hierarchical=hierarchical, rotation=rotation,
            elastic_alpha=elastic_alpha, elastic_sigma=elastic_sigma,
            crop_scale=crop_scale, mix_prob=mix_prob,
            monochrome_prob=monochrome_prob, mask_sigma=mask_sigma,
            background_prob=background_prob, background_range=background_range,
            zoom_range=zoom_range, aspect_sigma=aspect_sigma, shift=shift,
            texture_prob=texture_prob, texture_freq=tuple(texture_freq))
        # Plain priors come first; the rest of the pool are blends of their pairs.
        self.num_plain = num_images - round(label_mix * num_images)
        self.label_mix_lam = tuple(label_mix_lam)
        self.label_mix_balanced, self.label_mix_mode = label_mix_balanced, label_mix_mode
        self.balanced, self.seed = balanced, seed
        self.register_buffer('batches_made', torch.zeros((), dtype=torch.long))

    @property
    def pixel_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised values of pixels 0 and 255 (per channel)."""
        return self.priors.pixel_range

    def generate(self, n: int, seed: int | None = None) -> torch.Tensor:
        """``n`` priors in the teacher's input space; reproducible when ``seed`` is given."""
        return self.priors(n, seed)

    @property
    def done(self) -> bool:
        """Whether the pool holds ``num_images`` labelled images (the query budget is spent)."""
        return len(self.pool) >= self.num_images

    def synthesize(self, algorithm: 'DIPKD',
                   optim_wrapper: OptimWrapper | None = None) -> dict[str, torch.Tensor]:
        """Generate the next batch of priors, buy their labels, add them to the pool."""
        if not self.done:
            seed = self.seed + int(self.batches_made)
            if len(self.pool) < self.num_plain:
                n = min(self.batch_size, self.num_plain - len(self.pool))
                images = self.generate(n, seed=seed)
            else:
                n = min(self.batch_size, self.num_images - len(self.pool))
                images = self.blend_labelled_pairs(n, seed=seed)
            labels = algorithm.teacher.query_labels(images)
            self.pool.add(images, labels=labels)
            self.batches_made += 1
        return {'pool_size': torch.tensor(float(len(self.pool)))}

    @torch.no_grad()
    def blend_labelled_pairs(self, n: int, seed: int) -> torch.Tensor:
        """``n`` blends of pairs of the pool's plain priors with different teacher labels
        (pairs with equal labels only when too few differ, e.g. a one-class pool)."""
        rng = torch.Generator().manual_seed(seed)
        first, second = draw_differing_pairs(self.pool.labels()[:self.num_plain], n, rng,
                                             self.label_mix_balanced)
        low, high = self.label_mix_lam
        lam = low + (high - low) * torch.rand(n, 1, 1, 1, generator=rng)
        device = self._device_probe.device
        a = self.pool.gather(first, device=device)['images']
        b = self.pool.gather(second, device=device)['images']
        if self.label_mix_mode == 'overlay':
            # Normalisation is increasing per channel, so this is the pixel-value maximum.
            return torch.maximum(a, b)
        return lam.to(device) * a + (1 - lam.to(device)) * b

    def class_counts(self, num_classes: int) -> torch.Tensor:
        """How many pooled images the teacher labelled as each class, shape (num_classes,)."""
        return torch.bincount(self.pool.labels(), minlength=num_classes)

    @torch.no_grad()
    def sample_labelled(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``batch_size`` pooled images with their teacher labels, drawn with replacement (every
        class equally likely when ``balanced``).
        """
        records = self.pool.gather(self.pool.sample_index(batch_size, self.balanced),
                                   device=self._device_probe.device)
        return records['images'], records['labels']

    @torch.no_grad()
    def sample(self, batch_size: int) -> torch.Tensor:
        """The images of :meth:`sample_labelled`, without their labels."""
        return self.sample_labelled(batch_size)[0]

    @torch.no_grad()
    def sample_overlays(self, n: int) -> torch.Tensor:
        """``n`` pixel-wise maxima of two pooled images drawn uniformly: unlabelled images
        from the pool's own distribution of objects, at no teacher query and no prior
        synthesis cost (DIP-KD's primer labels them for the student's L1 term)."""
        first, second = self.pool.sample_index(2 * n).view(2, n)
        device = self._device_probe.device
        return torch.maximum(self.pool.gather(first, device=device)['images'],
                             self.pool.gather(second, device=device)['images'])
