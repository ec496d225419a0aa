"""DIP-KD's contrast phase: make pooled priors mutually distinguishable."""
from collections.abc import Callable

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from torch import nn
from torchvision.transforms import v2

from mmdfkd.engine.optimizers.mixed_precision import scale_like_backward
from mmdfkd.models.losses.contrastive import info_nce
from mmdfkd.models.utils import check_step_sizes
from mmdfkd.registry import MODELS


@MODELS.register_module()
class InstanceContrastRefiner(nn.Module):
    """Instance discriminator ``R`` (two linear layers -> ``embed_dim``) over an encoder's
    features, trained together with the images themselves by InfoNCE: each image's local
    view (random resized crop) must pick its own global view among the batch's, so images that
    look alike are pushed apart. Positives are indexed per image (no memory bank).

    ``refine`` optimises a batch of pooled images (Adam on the pixels, ``steps`` steps) and the
    head (one step of the caller's optimizer per pixel step); the caller writes the images
    back to the pool.

    Args:
        embed_dim (int): Output size of ``R`` (128 in the paper).
        temperature (float): InfoNCE temperature.
        image_lr (float): Adam learning rate of the pixels (betas 0.5, 0.999).
        steps (int): Pixel updates per refined batch.
        crop_scale (tuple): Scale range of the local view's random resized crop.
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, embed_dim: int = 128, temperature: float = 0.1, image_lr: float = 1e-3,
                 steps: int = 1, crop_scale: tuple[float, float] = (0.25, 1.0),
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0 or steps < 1:
            raise ValueError('InstanceContrastRefiner needs temperature > 0 and steps >= 1')
        check_step_sizes({'model.contrast.image_lr': image_lr})
        self.embed_dim, self.temperature = embed_dim, temperature
        self.image_lr, self.steps, self.loss_weight = image_lr, steps, loss_weight
        self.crop_scale = tuple(crop_scale)
        self.head: nn.Module | None = None

    def build(self, feature_dim: int) -> None:
        """Create ``R`` for the encoder's feature size."""
        self.head = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True),
                                  nn.Linear(feature_dim, self.embed_dim))

    def loss(self, encode: Callable[[torch.Tensor], torch.Tensor],
             images: torch.Tensor) -> torch.Tensor:
        """InfoNCE between local and global views of ``images`` under ``encode`` (images ->
        features)."""
        if self.head is None:
            raise RuntimeError('InstanceContrastRefiner.build(feature_dim) was not called.')
        crop = v2.RandomResizedCrop(tuple(images.shape[-2:]), scale=self.crop_scale,
                                    antialias=True)
        local = F.normalize(self.head(encode(crop(images))), dim=1)
        global_ = F.normalize(self.head(encode(images)), dim=1)
        return self.loss_weight * 0.5 * (info_nce(local, global_, self.temperature).mean() +
                                         info_nce(global_, local, self.temperature).mean())

    def refine(self, encode: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
               head_optim_wrapper: OptimWrapper,
               pixel_range: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, float]:
        """Refined copies of ``images`` (clamped to ``pixel_range``) and the last loss."""
        pixels = images.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([pixels], lr=self.image_lr, betas=(0.5, 0.999))
        for _ in range(self.steps):
            loss = self.loss(encode, pixels)
            optimizer.zero_grad()
            head_optim_wrapper.zero_grad()
            loss.backward()
            optimizer.step()
            # One backward serves the pixels and the head; only the head's wrapper may
            # scale (``--amp``), so its gradients are scaled as its step() expects.
            scale_like_backward(head_optim_wrapper)
            head_optim_wrapper.step()
            with torch.no_grad():
                pixels.copy_(torch.maximum(torch.minimum(pixels, pixel_range[1]),
                                           pixel_range[0]))
        return pixels.detach(), loss.item()
