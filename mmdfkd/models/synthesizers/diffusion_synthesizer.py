"""DiffDFKD: images from a pre-trained diffusers model, steered by the teacher at every
denoising step (Li et al.; the released code does not run, this is our implementation)."""
import json
import os.path as osp
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from mmengine.optim import OptimWrapper
from torch import nn

from mmdfkd.models.utils import BalancedLabelSampler, check_step_sizes
from mmdfkd.registry import MODELS
from mmdfkd.utils.repo_paths import found_under_repo_root
from .base import PooledSynthesizer

if TYPE_CHECKING:
    from mmdfkd.models.algorithms import DataFreeDistiller

PIXEL_PARTS = ('unet', 'scheduler')
LATENT_PARTS = ('unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler')
DTYPES = {'float32': torch.float32, 'float16': torch.float16, 'bfloat16': torch.bfloat16}


def check_pipeline_dir(path: str) -> str:
    """``'latent'`` (Stable-Diffusion layout) or ``'pixel'`` (unconditional UNet) for a local
    diffusers folder; a clear error when it is missing or incomplete."""
    if not path or not osp.isdir(path):
        elsewhere = found_under_repo_root(path, 'model.synthesizer.pipeline_path')
        if elsewhere:
            raise FileNotFoundError(elsewhere)
        raise FileNotFoundError(
            f"model.synthesizer.pipeline_path '{path}' is not a local folder. mmdfkd never "
            'downloads weights: give a saved diffusers pipeline with the sub-folders '
            f'{list(LATENT_PARTS)} (latent text-to-image, e.g. Stable Diffusion) or '
            f'{list(PIXEL_PARTS)} (pixel-space; `python tools/train_ddpm.py` makes one).')
    kind = 'latent' if osp.isdir(osp.join(path, 'vae')) else 'pixel'
    expected = LATENT_PARTS if kind == 'latent' else PIXEL_PARTS
    missing = [p for p in expected if not osp.isdir(osp.join(path, p))]
    if missing:
        raise FileNotFoundError(
            f"diffusers pipeline '{path}' ({kind} layout) lacks the sub-folder(s) {missing}; "
            f'expected {list(expected)}')
    return kind


@MODELS.register_module()
class DiffusionSynthesizer(PooledSynthesizer):
    """Teacher-guided sampling from a local diffusers model into the shared data pool.

    Each :meth:`synthesize` call draws class-balanced targets ``y`` and denoises a batch from
    pure noise over ``num_inference_steps`` scheduler steps. At every step: predict ``x0``
    from ``z_t``, decode it (VAE for latent models), resize/normalise it to the teacher's
    input, compute ``bn`` (teacher BN statistics) + ``ce_weight * CE(T(x0), y)`` +
    ``adversarial`` (student-teacher disagreement on agreeing samples), take **one** gradient
    step of size ``guidance_lr`` on ``z_t``, then let the scheduler continue. Every
    ``cutmix_every`` steps, latent CutMix pastes a box of another sample's latent (the CE
    target becomes the area-weighted mix) and ``repair_steps`` inpainting passes re-sample a
    band around the box edges (denoise one step, re-noise, keep everything but the band), so
    the seam is regenerated rather than left as an edge.

    Latent pipelines (``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``) are
    conditioned on ``prompt_template.format(class_name)`` with classifier-free
    ``guidance_scale``; pixel pipelines (``unet``, ``scheduler``) are unconditional. Repair
    passes assume a stateless scheduler (DDIM, DDPM).

    Args:
        pipeline_path (str): Local diffusers folder (never downloaded).
        image_shape (tuple): Teacher input ``(C, H, W)``; samples are resized to it.
        num_classes (int): Teacher classes.
        mean (list[float]): Teacher input normalisation (pixel scale 0-255).
        std (list[float]): Same, standard deviation.
        batch_size (int): Images per synthesised batch.
        num_inference_steps (int): Denoising steps per batch.
        guidance_lr (float): Step size of the per-step teacher-guidance update of ``z_t``.
        normalize_grad (bool): Scale each sample's guidance gradient to unit RMS first, so
            ``guidance_lr`` is in units of the latent's scale.
        bn (dict, optional): ``BNStatisticsLoss`` config (``alpha``); ``None`` = off.
        ce_weight (float): ``beta``.
        adversarial (dict, optional): ``AdversarialDisagreementLoss`` config (``gamma``).
        cutmix_every (int): Latent CutMix every k steps (0 = off).
        cutmix_area (tuple): Range of the pasted box's area fraction.
        repair_steps (int): Inpainting passes over the seam after each CutMix.
        resolution (int, optional): Sampling resolution in pixels (default: the UNet's sample
            size, times the VAE's downscale factor for latent pipelines).
        class_names (list[str], optional): For prompts (latent pipelines).
        prompt_template (str): Prompt per class.
        guidance_scale (float): Classifier-free guidance scale (latent pipelines).
        scheduler (str, optional): A diffusers scheduler class to use instead of the saved
            one, built from the saved config (e.g. ``'DDIMScheduler'`` for few steps).
        dtype (str): ``'float32'``, ``'float16'`` or ``'bfloat16'`` for the diffusion model
            (half precision needs a GPU); the guidance gradient is taken in that dtype.
        attention_slicing (bool): Slice attention to save memory where the UNet supports it.
        pool (dict, optional): ``SyntheticDataPool`` config.
    """

    method_name = 'DiffDFKD'

    def __init__(self, pipeline_path: str, image_shape: tuple[int, int, int] = (3, 32, 32),
                 num_classes: int = 10, mean: list[float] = (0., ), std: list[float] = (255., ),
                 batch_size: int = 32, num_inference_steps: int = 25, guidance_lr: float = 0.1,
                 bn: dict | None = None, ce_weight: float = 1.0,
                 adversarial: dict | None = None, cutmix_every: int = 0,
                 cutmix_area: tuple[float, float] = (0.25, 0.5), repair_steps: int = 1,
                 resolution: int | None = None, class_names: list[str] | None = None,
                 prompt_template: str = 'a photo of a {}', guidance_scale: float = 7.5,
                 normalize_grad: bool = True, scheduler: str | None = None,
                 dtype: str = 'float32',
                 attention_slicing: bool = False, pool: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        super().__init__(pool=pool, init_cfg=init_cfg)
        if dtype not in DTYPES:
            raise ValueError(f"model.synthesizer.dtype must be one of {list(DTYPES)}, got "
                             f"'{dtype}'")
        if num_inference_steps < 1 or batch_size < 1:
            raise ValueError('model.synthesizer.num_inference_steps and batch_size must be >= 1')
        check_step_sizes({'model.synthesizer.guidance_lr': guidance_lr})
        self.kind = check_pipeline_dir(pipeline_path)
        self.pipeline_path = pipeline_path
        self.image_shape, self.num_classes = tuple(image_shape), num_classes
        self.batch_size, self.num_inference_steps = batch_size, num_inference_steps
        self.guidance_lr, self.ce_weight = guidance_lr, ce_weight
        self.normalize_grad = normalize_grad
        self.cutmix_every, self.cutmix_area = cutmix_every, tuple(cutmix_area)
        self.repair_steps = repair_steps
        self.guidance_scale, self.prompt_template = guidance_scale, prompt_template
        self.class_names = list(class_names) if class_names else [str(i) for i in
                                                                  range(num_classes)]
        if len(self.class_names) != num_classes:
            raise ValueError(f'model.synthesizer.class_names has {len(self.class_names)} '
                             f'names for {num_classes} classes')
        self.dtype = DTYPES[dtype]
        self.bn_loss = MODELS.build(bn) if bn else None
        self.adversarial = MODELS.build(adversarial) if adversarial else None
        self.balanced_targets = BalancedLabelSampler(num_classes)
        c = self.image_shape[0]
        for key, values in (('mean', mean), ('std', std)):
            if len(values) not in (1, c):
                allowed = '1 value' if c == 1 else f'1 or {c} values'
                raise ValueError(f'model.synthesizer.{key} needs {allowed} (one per channel '
                                 f'of image_shape {self.image_shape}, in 0-255 '
                                 f"pixel units, as the teacher's data_preprocessor), got "
                                 f'{list(values)}')
        self.register_buffer('mean', torch.tensor(mean, dtype=torch.float).view(1, -1, 1, 1)
                             .expand(1, c, 1, 1).clone(), persistent=False)
        self.register_buffer('std', torch.tensor(std, dtype=torch.float).view(1, -1, 1, 1)
                             .expand(1, c, 1, 1).clone(), persistent=False)
        self._load(scheduler, attention_slicing)
        size = self.unet.config.sample_size
        size = size if isinstance(size, int) else size[0]
        # A latent UNet's sample_size counts latent cells (64 for Stable Diffusion at 512 px).
        self.resolution = resolution or size * self.vae_scale_factor

    # ------------------------------------------------------------------ pipeline
    def _load(self, scheduler: str | None, attention_slicing: bool) -> None:
        import diffusers
        path = self.pipeline_path
        saved = diffusers.SchedulerMixin
        with open(osp.join(path, 'scheduler', 'scheduler_config.json')) as f:
            saved_name = json.load(f).get('_class_name', 'DDPMScheduler')
        scheduler_cls = getattr(diffusers, scheduler or saved_name, None)
        if scheduler_cls is None or not issubclass(scheduler_cls, saved):
            raise ValueError(f"model.synthesizer.scheduler '{scheduler or saved_name}' is not a "
                             'diffusers scheduler class')
        self.scheduler = scheduler_cls.from_pretrained(path, subfolder='scheduler',
                                                       local_files_only=True)
        # Frozen parts are kept out of the module tree: not trained, not checkpointed (they
        # are reloaded from pipeline_path), and not swept up by the optimizer constructor.
        parts = {}
        if self.kind == 'pixel':
            parts['unet'] = diffusers.UNet2DModel.from_pretrained(
                path, subfolder='unet', local_files_only=True, torch_dtype=self.dtype)
        else:
            import transformers
            parts['unet'] = diffusers.UNet2DConditionModel.from_pretrained(
                path, subfolder='unet', local_files_only=True, torch_dtype=self.dtype)
            parts['vae'] = diffusers.AutoencoderKL.from_pretrained(
                path, subfolder='vae', local_files_only=True, torch_dtype=self.dtype)
            parts['text_encoder'] = transformers.CLIPTextModel.from_pretrained(
                path, subfolder='text_encoder', local_files_only=True, torch_dtype=self.dtype)
            self.tokenizer = transformers.CLIPTokenizer.from_pretrained(
                path, subfolder='tokenizer', local_files_only=True)
        for module in parts.values():
            module.requires_grad_(False).eval()
            if attention_slicing and hasattr(module, 'set_attention_slice'):
                module.set_attention_slice('auto')
        self._frozen = parts

    @property
    def unet(self) -> nn.Module:
        """The pipeline's frozen denoiser (a UNet2DModel or UNet2DConditionModel)."""
        return self._frozen['unet']

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell (1 for pixel-space pipelines)."""
        if self.kind == 'pixel':
            return 1
        return 2 ** (len(self._frozen['vae'].config.block_out_channels) - 1)

    def _apply(self, fn: Callable, recurse: bool = True) -> 'DiffusionSynthesizer':
        # Move the frozen diffusion parts with the synthesizer (they are not submodules).
        super()._apply(fn, recurse)
        device = self._device_probe.device
        for module in getattr(self, '_frozen', {}).values():
            module.to(device)
        return self

    @torch.no_grad()
    def _prompt_embeddings(self, labels: torch.Tensor) -> torch.Tensor:
        prompts = [self.prompt_template.format(self.class_names[i]) for i in labels.tolist()]
        tokens = self.tokenizer(prompts + [''] * len(prompts), padding='max_length',
                                max_length=self.tokenizer.model_max_length, truncation=True,
                                return_tensors='pt').input_ids.to(self._device_probe.device)
        return self._frozen['text_encoder'](tokens)[0]

    def _predict_noise(self, z: torch.Tensor, t: torch.Tensor,
                       text: torch.Tensor | None) -> torch.Tensor:
        if self.kind == 'pixel':
            return self.unet(z, t).sample
        eps = self.unet(torch.cat([z, z]), t, encoder_hidden_states=text).sample
        cond, uncond = eps.chunk(2)
        return uncond + self.guidance_scale * (cond - uncond)

    def _decode(self, x0: torch.Tensor) -> torch.Tensor:
        """Predicted clean sample -> teacher input (resized, normalised, float32)."""
        if self.kind == 'latent':
            vae = self._frozen['vae']
            x0 = vae.decode(x0 / vae.config.scaling_factor).sample
        pixels = (x0.float().clamp(-1, 1) + 1) / 2
        c, h, w = self.image_shape
        if pixels.size(1) != c:
            pixels = (pixels.mean(1, keepdim=True) if c == 1 else
                      pixels.expand(-1, c, -1, -1))
        if pixels.shape[-2:] != (h, w):
            pixels = F.interpolate(pixels, size=(h, w), mode='bilinear', align_corners=False,
                                   antialias=True)
        # The VAE decoder returns channels-last memory, which resizing and the models' convs
        # keep; a model that flattens with `.view` (mmpretrain's VGG) then fails.
        return ((pixels * 255 - self.mean) / self.std).contiguous()

    def _initial_noise(self, n: int) -> torch.Tensor:
        channels = self.unet.config.in_channels
        size = self.resolution // self.vae_scale_factor
        noise = torch.randn(n, channels, size, size, device=self._device_probe.device)
        return (noise * self.scheduler.init_noise_sigma).to(self.dtype)

    # ------------------------------------------------------------------ guidance
    def bind(self, teacher: nn.Module) -> None:
        """Hook the BN-statistics term, when configured, to the teacher's BN layers."""
        if self.bn_loss is not None:
            self.bn_loss.bind(teacher)

    def guidance_loss(self, distiller: 'DataFreeDistiller', images: torch.Tensor,
                      targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """``alpha * BN + beta * CE + gamma * adversarial`` of decoded ``x0`` (``targets``:
        class indices or, after CutMix, soft class weights)."""
        t_logits, _ = distiller.teacher_forward(images)
        losses = {'loss_ce': self.ce_weight * F.cross_entropy(t_logits, targets)}
        if self.bn_loss is not None:
            losses['loss_bn'] = self.bn_loss()
        if self.adversarial is not None:
            losses['loss_adv'] = self.adversarial(distiller.student_forward(images), t_logits)
        return losses

    def guided_step(self, distiller: 'DataFreeDistiller', z: torch.Tensor, t: torch.Tensor,
                    targets: torch.Tensor, text: torch.Tensor | None
                    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """One teacher-guided update of ``z_t``; returns ``(z_t updated, noise prediction,
        losses)``."""
        z = z.detach().requires_grad_(True)
        eps = self._predict_noise(z, t, text)
        alpha_bar = self.scheduler.alphas_cumprod.to(z.device)[t].to(z.dtype)
        x0 = (z - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()
        losses = self.guidance_loss(distiller, self._decode(x0), targets)
        grad, = torch.autograd.grad(sum(losses.values()), z)
        if self.normalize_grad:
            # Unit RMS per sample: guidance_lr is then a step in units of the latent's noise
            # scale, whatever the size of the teacher's gradient (it varies by orders).
            rms = grad.float().flatten(1).pow(2).mean(1).sqrt().clamp(min=1e-12)
            grad = grad / rms.view(-1, *([1] * (grad.dim() - 1))).to(grad.dtype)
        z = (z - self.guidance_lr * grad.to(z.dtype)).detach()
        return z, eps.detach(), {k: v.detach() for k, v in losses.items()}

    # ------------------------------------------------------------------ CutMix
    @staticmethod
    def box_mask(n: int, size: int, area: tuple[float, float],
                 device: torch.device | str = 'cpu') -> torch.Tensor:
        """``(N, 1, size, size)`` masks, 1 inside one random box per sample covering a
        fraction of the image drawn from ``area``."""
        frac = area[0] + (area[1] - area[0]) * torch.rand(n)
        side = (frac.sqrt() * size).round().clamp(1, size).long()
        mask = torch.zeros(n, 1, size, size, device=device)
        for i in range(n):
            s = int(side[i])
            y0 = int(torch.randint(0, size - s + 1, ()))
            x0 = int(torch.randint(0, size - s + 1, ()))
            mask[i, :, y0:y0 + s, x0:x0 + s] = 1
        return mask

    @staticmethod
    def latent_cutmix(z: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor,
                      partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Paste ``partner``-indexed latents inside ``mask``; soft targets weighted by area.
        ``targets``: ``(N, C)`` class weights."""
        area = mask.flatten(1).mean(1, keepdim=True)
        # In z's dtype: a float32 mask promoted half-precision latents to float32, and the
        # half-precision UNet then refused them ("mat1 and mat2 must have the same dtype").
        mask = mask.to(z.dtype)
        mixed = mask * z[partner] + (1 - mask) * z
        return mixed, area * targets[partner] + (1 - area) * targets

    @staticmethod
    def seam_band(mask: torch.Tensor, width: int = 1) -> torch.Tensor:
        """Pixels within ``width`` of the mask's edge (dilation minus erosion)."""
        k = 2 * width + 1
        dilated = F.max_pool2d(mask, k, stride=1, padding=width)
        eroded = -F.max_pool2d(-mask, k, stride=1, padding=width)
        return (dilated - eroded).clamp(0, 1)

    def repair(self, z: torch.Tensor, t: torch.Tensor, prev_t: torch.Tensor,
               band: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        """Inpainting passes over ``band``: denoise ``t -> prev_t``, re-noise back to ``t``,
        keep the result only inside the band (RePaint-style resampling)."""
        alphas = self.scheduler.alphas_cumprod.to(z.device)
        a_t = alphas[t]
        a_prev = alphas[prev_t] if prev_t >= 0 else self.scheduler.final_alpha_cumprod.to(
            z.device) if hasattr(self.scheduler, 'final_alpha_cumprod') else alphas[0]
        for _ in range(self.repair_steps):
            with torch.no_grad():
                eps = self._predict_noise(z, t, text)
                z_prev = self.scheduler.step(eps, t, z).prev_sample
            ratio = (a_t / a_prev).to(z.dtype)
            renoised = ratio.sqrt() * z_prev + (1 - ratio).sqrt() * torch.randn_like(z_prev)
            z = band.to(z.dtype) * renoised + (1 - band.to(z.dtype)) * z
        return z

    # ------------------------------------------------------------------ synthesis
    def synthesize(self, distiller: 'DataFreeDistiller',
                   optim_wrapper: OptimWrapper | None = None) -> dict[str, torch.Tensor]:
        """Denoise one class-balanced batch under the teacher's guidance and pool it.

        Every timestep's guidance terms are averaged into the returned losses; every
        ``cutmix_every`` steps the latents are CutMixed (targets mixed by area, the seam
        band resampled ``repair_steps`` times, RePaint-style). The decoded images are pooled
        with the teacher's logits; ``target_acc`` says how many the teacher reads as their
        (larger) target class. ``optim_wrapper`` is unused: the diffusion model stays frozen.
        """
        device = self._device_probe.device
        labels = self.balanced_targets(self.batch_size, device)
        targets = F.one_hot(labels, self.num_classes).float()
        text = self._prompt_embeddings(labels) if self.kind == 'latent' else None
        self.scheduler.set_timesteps(self.num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        z = self._initial_noise(self.batch_size)
        totals: dict[str, torch.Tensor] = {}
        for i, t in enumerate(timesteps):
            z_in = self.scheduler.scale_model_input(z, t)
            z_in, eps, losses = self.guided_step(distiller, z_in, t, targets, text)
            for k, v in losses.items():
                totals[k] = totals.get(k, 0) + v / len(timesteps)
            z = self.scheduler.step(eps, t, z_in).prev_sample
            last = i == len(timesteps) - 1
            if self.cutmix_every and (i + 1) % self.cutmix_every == 0 and not last:
                mask = self.box_mask(z.size(0), z.size(-1), self.cutmix_area, device)
                partner = torch.randperm(z.size(0), device=device)
                z, targets = self.latent_cutmix(z, targets, mask, partner)
                if text is not None:
                    # The prompt follows the larger part of each mixed latent.
                    text = text.clone()
                    keep = targets.argmax(1)
                    text[:len(keep)] = self._prompt_embeddings(keep)[:len(keep)]
                if self.repair_steps:
                    next_t = timesteps[i + 1]
                    prev_t = timesteps[i + 2] if i + 2 < len(timesteps) else torch.tensor(-1)
                    z = self.repair(z, next_t, prev_t, self.seam_band(mask), text)
        with torch.no_grad():
            images = self._decode(z.float() if self.kind == 'pixel' else z)
            logits, _ = distiller.teacher_forward(images)
        self.pool.add(images, logits)
        out = dict(totals)
        out['target_acc'] = (logits.argmax(1) == targets.argmax(1)).float().mean()
        out['pool_size'] = torch.tensor(float(len(self.pool)))
        return out
