"""Tiny randomly initialised diffusers pipelines, saved as local folders.

DiffDFKD loads its diffusion model from a local folder and never downloads one. To check that
a DiffDFKD recipe builds and runs (the tests, ``tools/misc/smoke_configs.py``) without Stable
Diffusion or a trained DDPM at hand, these stand in for them: the same layouts, a few
thousand random weights, nothing downloaded. Their images are noise; they test plumbing,
never accuracy.
"""
import json
import os.path as osp
import tempfile

import torch

from mmdfkd.apis.ddpm import build_unet


def save_random_pixel_pipeline(path: str, channels: int = 1, size: int = 16, width: int = 8,
                               num_train_timesteps: int = 100, seed: int = 0) -> str:
    """Save a pixel-space ``DDPMPipeline`` (``unet``, ``scheduler``) with random weights to
    ``path`` (the layout ``tools/train_ddpm.py`` writes) and return ``path``."""
    from diffusers import DDPMPipeline, DDPMScheduler
    torch.manual_seed(seed)
    DDPMPipeline(unet=build_unet(size=size, channels=channels, width=width),
                 scheduler=DDPMScheduler(num_train_timesteps=num_train_timesteps)
                 ).save_pretrained(path)
    return path


def save_random_latent_pipeline(path: str, num_train_timesteps: int = 100,
                                seed: int = 0) -> str:
    """Save a Stable-Diffusion-layout pipeline (``unet``, ``vae``, ``text_encoder``,
    ``tokenizer``, ``scheduler``) with random weights to ``path`` and return ``path``.

    The CLIP tokenizer gets a hand-made vocabulary, one token per printable ASCII character
    and no merges, so no vocabulary file is downloaded; prompts still tokenise.
    """
    from diffusers import (AutoencoderKL, DDIMScheduler, StableDiffusionPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    chars = [chr(i) for i in range(33, 127)]  # CLIP's byte encoder maps these to themselves
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + '</w>': len(chars) + i for i, c in enumerate(chars)})
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({'<|startoftext|>': bos, '<|endoftext|>': eos})
    with tempfile.TemporaryDirectory() as vocab_dir:  # save_pretrained copies them
        vocab_file = osp.join(vocab_dir, 'vocab.json')
        merges_file = osp.join(vocab_dir, 'merges.txt')
        with open(vocab_file, 'w') as f:
            json.dump(vocab, f)
        with open(merges_file, 'w') as f:
            f.write('#version: 0.2\n')
        tokenizer = CLIPTokenizer(vocab_file, merges_file, model_max_length=24)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, max_position_embeddings=24, projection_dim=16,
        bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(16, 32), down_block_types=('CrossAttnDownBlock2D', 'DownBlock2D'),
        up_block_types=('UpBlock2D', 'CrossAttnUpBlock2D'), cross_attention_dim=16,
        attention_head_dim=4, norm_num_groups=8)
    # Four blocks, three 2x downsamplings: latents 1/8 of the image side, as Stable
    # Diffusion's. With a shallower VAE a recipe's 256 px images gave 128x128 latents, whose
    # self-attention alone needed over 20 GB.
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                        block_out_channels=(8, 8, 16, 16),
                        down_block_types=('DownEncoderBlock2D',) * 4,
                        up_block_types=('UpDecoderBlock2D',) * 4, norm_num_groups=8,
                        sample_size=64)
    StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=DDIMScheduler(num_train_timesteps=num_train_timesteps, clip_sample=False,
                                steps_offset=1),
        safety_checker=None, feature_extractor=None,
        requires_safety_checker=False).save_pretrained(path)
    return path
