"""The domain-gap DDPM behind DiffDFKD's Fashion-MNIST config (`tools/train_ddpm.py`): its
training images and a short training run that must learn and save a loadable pipeline."""
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from mmdfkd.apis.ddpm import build_unet, digits_images, train_ddpm
from mmdfkd.models.synthesizers.diffusion_synthesizer import check_pipeline_dir

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_digits_images_are_centred_strokes_on_a_dark_border():
    images = digits_images(16)
    assert images.shape == (1797, 1, 16, 16)
    assert images.min() >= -1 and images.max() <= 1
    # The 2-px margin is background (-1), as in MNIST-style layouts; the strokes are not.
    ring = torch.cat([images[..., :2, :].flatten(1), images[..., -2:, :].flatten(1),
                      images[..., :, :2].flatten(1), images[..., :, -2:].flatten(1)], 1)
    assert torch.all(ring == -1)
    assert (images.flatten(1).max(1).values > 0.5).all()


def _denoising_loss(unet, images, scheduler) -> float:
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(images.shape, generator=gen)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(images), ), generator=gen)
    with torch.no_grad():
        return F.mse_loss(unet(scheduler.add_noise(images, noise, t), t).sample, noise).item()


def test_train_ddpm_learns_and_saves_a_pipeline_the_synthesizer_accepts(tmp_path):
    from diffusers import DDPMScheduler, UNet2DModel
    images = digits_images(16)[:128]
    out = train_ddpm(str(tmp_path / 'ddpm'), images, steps=40, batch_size=16, lr=1e-3,
                     width=8, num_train_timesteps=100, log_every=0)
    assert check_pipeline_dir(out) == 'pixel'
    trained = UNet2DModel.from_pretrained(osp.join(out, 'unet')).eval()
    scheduler = DDPMScheduler.from_pretrained(osp.join(out, 'scheduler'))
    assert scheduler.config.num_train_timesteps == 100
    torch.manual_seed(0)  # the initialisation train_ddpm starts from (seed=0)
    untrained = build_unet(16, 1, 8).eval()
    before = _denoising_loss(untrained, images[:64], scheduler)
    after = _denoising_loss(trained, images[:64], scheduler)
    assert after < 0.7 * before, (before, after)


def test_train_ddpm_tool_writes_the_folder(tmp_path):
    out = tmp_path / 'ddpm_cli'
    result = subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'train_ddpm.py'), '--out', str(out),
         '--steps', '2', '--batch-size', '4', '--width', '8', '--size', '16'],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f'saved the pipeline to {out}' in result.stdout
    assert check_pipeline_dir(str(out)) == 'pixel'


def test_train_ddpm_refuses_bad_arguments(tmp_path):
    images = digits_images(16)[:8]
    with pytest.raises(ValueError, match='--steps'):
        train_ddpm(str(tmp_path / 'a'), images, steps=0)
    with pytest.raises(ValueError, match=r'\[-1, 1\]'):
        train_ddpm(str(tmp_path / 'b'), (images + 1) * 127.5, steps=1)
    # torch's shape / GroupNorm errors used to be all a bad --size or --width gave.
    with pytest.raises(ValueError, match=r'--size\) must be a multiple of 4 .*got 30'):
        train_ddpm(str(tmp_path / 'c'), digits_images(30)[:8], steps=1, width=8)
    with pytest.raises(ValueError, match=r'--width\) must be a positive multiple of 8.*got 6'):
        train_ddpm(str(tmp_path / 'd'), images, steps=1, width=6)
    assert not any((tmp_path / n).exists() for n in 'abcd')
