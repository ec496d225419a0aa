"""Train a small pixel-space DDPM on data that is *not* the teacher's: a domain-gap prior for
DiffDFKD on CPU, as Stable Diffusion is for CIFAR (``tools/train_ddpm.py``)."""
import os
import time
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from diffusers import UNet2DModel


def digits_images(size: int = 32) -> torch.Tensor:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download), upsampled
    to ``size`` with a black margin, in ``[-1, 1]``: shape ``(N, 1, size, size)``."""
    from sklearn.datasets import load_digits
    digits = torch.tensor(load_digits().images, dtype=torch.float32)[:, None] / 16.0
    inner = size - size // 4  # digit strokes in the centre, dark border (like MNIST layouts)
    digits = F.interpolate(digits, size=(inner, inner), mode='bilinear', align_corners=False)
    pad = (size - inner) // 2
    digits = F.pad(digits, (pad, size - inner - pad, pad, size - inner - pad))
    return digits.clamp(0, 1) * 2 - 1


def build_unet(size: int = 32, channels: int = 1, width: int = 32) -> 'UNet2DModel':
    """A small ``UNet2DModel`` (three resolutions, one res-block each)."""
    from diffusers import UNet2DModel
    # Two 2x downsamplings must come back to the same sizes on the way up, and GroupNorm
    # splits every block's channels into 8 groups (torch's errors name neither option).
    if size < 4 or size % 4:
        raise ValueError(f'the DDPM image size (--size) must be a multiple of 4 (its UNet '
                         f'halves it twice), got {size}')
    if width < 8 or width % 8:
        raise ValueError(f'the UNet base width (--width) must be a positive multiple of 8 '
                         f'(GroupNorm with 8 groups), got {width}')
    return UNet2DModel(sample_size=size, in_channels=channels, out_channels=channels,
                       layers_per_block=1, block_out_channels=(width, 2 * width, 2 * width),
                       down_block_types=('DownBlock2D', ) * 3,
                       up_block_types=('UpBlock2D', ) * 3, norm_num_groups=8)


def train_ddpm(out_dir: str, images: torch.Tensor, steps: int = 3000, batch_size: int = 64,
               lr: float = 2e-4, width: int = 32, num_train_timesteps: int = 1000,
               seed: int = 0, log_every: int = 100) -> str:
    """Train a DDPM on ``images`` (``[-1, 1]``) and save it as a diffusers pipeline folder
    (``unet/``, ``scheduler/``, ``model_index.json``) that ``DiffusionSynthesizer`` loads.
    Random shifts and flips augment the small training set."""
    from diffusers import DDPMPipeline, DDPMScheduler
    if steps < 1 or batch_size < 1:
        raise ValueError(f'train_ddpm needs steps >= 1 and batch_size >= 1 (--steps, '
                         f'--batch-size), got steps={steps}, batch_size={batch_size}')
    if images.dim() != 4 or images.min() < -1 or images.max() > 1:
        raise ValueError('train_ddpm wants images of shape (N, C, H, W) in [-1, 1], got shape '
                         f'{tuple(images.shape)} with range [{images.min():.2f}, '
                         f'{images.max():.2f}]')
    torch.manual_seed(seed)
    unet = build_unet(images.size(-1), images.size(1), width)
    scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr)
    start = time.time()
    for step in range(1, steps + 1):
        batch = images[torch.randint(len(images), (batch_size, ))]
        shift = torch.randint(-2, 3, (2, ))
        batch = torch.roll(batch, shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
        noise = torch.randn_like(batch)
        t = torch.randint(0, num_train_timesteps, (batch_size, ))
        loss = F.mse_loss(unet(scheduler.add_noise(batch, noise, t), t).sample, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if log_every and (step % log_every == 0 or step == steps):
            print(f'[train_ddpm] step {step}/{steps} loss {loss.item():.4f} '
                  f'({time.time() - start:.0f}s)', flush=True)
    os.makedirs(out_dir, exist_ok=True)
    DDPMPipeline(unet=unet.eval(), scheduler=scheduler).save_pretrained(out_dir)
    return out_dir
