"""DiffDFKD: diffusers-guided synthesis (tiny random pipelines from
``mmdfkd.apis.random_pipelines``), latent CutMix, CAM consistency, a config that trains and
resumes with its pool."""
import os

import pytest
import torch
import torch.nn.functional as F

from mmdfkd.apis import build_runner
from mmdfkd.apis.random_pipelines import save_random_latent_pipeline, save_random_pixel_pipeline
from mmdfkd.models.losses import CAMConsistencyLoss, cam_forward
from mmdfkd.models.utils import deepest_output
from mmdfkd.models.synthesizers import DiffusionSynthesizer
from mmdfkd.models.synthesizers.diffusion_synthesizer import check_pipeline_dir
from mmdfkd.registry import MODELS

from .conftest import LENET5BN, LENET5HALF, needs_fmnist
from .runner_utils import datafree_cfg, last_checkpoint

CONFIG = 'diffdfkd/diffdfkd_lenet5bn_lenet5half_fmnist.py'


@pytest.fixture(scope='module')
def tiny_pipeline(tmp_path_factory) -> str:
    """A randomly initialised pixel-space DDPM pipeline folder (nothing downloaded)."""
    return save_random_pixel_pipeline(str(tmp_path_factory.mktemp('ddpm')))


FMNIST_CLASSES = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt',
                  'sneaker', 'bag', 'boot']


@pytest.fixture(scope='module')
def tiny_sd_pipeline(tmp_path_factory) -> str:
    """A randomly initialised Stable-Diffusion-layout folder (unet, vae, text_encoder,
    tokenizer, scheduler; nothing downloaded)."""
    return save_random_latent_pipeline(str(tmp_path_factory.mktemp('sd') / 'pipeline'))


def _synth(path: str, teacher_ckpt: str, **kw):
    from mmdfkd.models.algorithms import DataFreeDistiller
    synth = dict(type='DiffusionSynthesizer', pipeline_path=path, image_shape=(1, 32, 32),
                 num_classes=10, mean=[72.94], std=[90.0], batch_size=4,
                 num_inference_steps=4, scheduler='DDIMScheduler', ce_weight=1.0,
                 bn=dict(type='BNStatisticsLoss', loss_weight=0.1))
    synth.update(kw)
    distiller = DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF, synthesizer=synth,
                                  teacher_ckpt=teacher_ckpt,
                                  distill_loss=dict(type='KLDivergenceLoss'))
    return distiller


def test_pipeline_path_errors_name_the_missing_parts(tmp_path):
    with pytest.raises(FileNotFoundError, match='never downloads'):
        check_pipeline_dir(str(tmp_path / 'nothing'))
    os.makedirs(tmp_path / 'half' / 'unet')
    with pytest.raises(FileNotFoundError, match=r"lacks the sub-folder\(s\) \['scheduler'\]"):
        check_pipeline_dir(str(tmp_path / 'half'))
    os.makedirs(tmp_path / 'sd' / 'vae')
    os.makedirs(tmp_path / 'sd' / 'unet')
    with pytest.raises(FileNotFoundError, match="latent layout.*'text_encoder', 'tokenizer'"):
        check_pipeline_dir(str(tmp_path / 'sd'))


def test_a_relative_pipeline_path_read_from_another_folder_names_where_it_is(
        tmp_path, monkeypatch):
    """The config's pipeline_path (work_dirs/ddpm_digits) is relative to the repository."""
    from mmdfkd.utils import repo_paths
    os.makedirs(tmp_path / 'repo' / 'work_dirs' / 'ddpm' / 'unet')
    os.makedirs(tmp_path / 'repo' / 'work_dirs' / 'ddpm' / 'scheduler')
    os.makedirs(tmp_path / 'elsewhere')
    monkeypatch.setattr(repo_paths, 'REPO_ROOT', str(tmp_path / 'repo'))
    monkeypatch.chdir(tmp_path / 'elsewhere')
    with pytest.raises(FileNotFoundError, match=r"pipeline_path 'work_dirs/ddpm' does not "
                                                r'exist in the current directory.*--cfg-options '
                                                rf'model.synthesizer.pipeline_path={tmp_path}/repo'):
        check_pipeline_dir('work_dirs/ddpm')
    monkeypatch.chdir(tmp_path / 'repo')
    assert check_pipeline_dir('work_dirs/ddpm') == 'pixel'


def test_one_guided_step_lowers_the_teacher_ce(tiny_pipeline, teacher_ckpt):
    distiller = _synth(tiny_pipeline, teacher_ckpt, guidance_lr=0.2, bn=None)
    synth = distiller.synthesizer
    synth.scheduler.set_timesteps(4)
    # the last (least noisy) step: x0 stays inside [-1, 1], where the clamp passes gradients
    t = synth.scheduler.timesteps[-1]
    z = synth._initial_noise(8) * 0.3
    targets = torch.arange(8) % 10

    def ce(latent):
        with torch.no_grad():
            eps = synth._predict_noise(latent, t, None)
            ab = synth.scheduler.alphas_cumprod[t]
            x0 = (latent - (1 - ab).sqrt() * eps) / ab.sqrt()
            return F.cross_entropy(distiller.teacher(synth._decode(x0), mode='tensor'), targets)

    before = ce(z)
    z_new, eps, losses = synth.guided_step(distiller, z, t, targets, None)
    assert z_new.shape == z.shape and z_new.dtype == z.dtype and eps.shape == z.shape
    assert torch.isclose(losses['loss_ce'], before, atol=1e-5)
    assert ce(z_new) < before - 1e-3, 'one guidance step must lower the teacher CE'


def test_latent_pipeline_prompts_guidance_and_synthesis(tiny_sd_pipeline, teacher_ckpt,
                                                        tmp_path):
    """The Stable-Diffusion layout end to end on a tiny random model: class prompts condition
    the UNet, the default resolution is the latent size times the VAE factor, one guided step
    through the VAE decoder lowers the teacher CE, CutMix + repair run with prompts."""
    distiller = _synth(tiny_sd_pipeline, teacher_ckpt, class_names=FMNIST_CLASSES,
                       prompt_template='a photo of a {}', guidance_scale=3.0, bn=None,
                       guidance_lr=0.5)
    synth = distiller.synthesizer
    assert synth.kind == 'latent' and synth.vae_scale_factor == 8 and synth.resolution == 64
    z = synth._initial_noise(3)
    assert z.shape == (3, 4, 8, 8)
    text = synth._prompt_embeddings(torch.tensor([6, 0, 6]))
    # conditional embeddings for the three prompts, then three unconditional ones
    assert text.shape == (6, 24, 16)
    assert torch.allclose(text[0], text[2]) and not torch.allclose(text[0], text[1])
    assert torch.allclose(text[3], text[5])
    synth.scheduler.set_timesteps(4)
    t = synth.scheduler.timesteps[-1]
    eps_shirt = synth._predict_noise(z, t, text)
    eps_tshirt = synth._predict_noise(z, t, synth._prompt_embeddings(torch.tensor([0, 0, 0])))
    assert not torch.allclose(eps_shirt[0], eps_tshirt[0])  # the prompt conditions the UNet
    assert torch.allclose(eps_shirt[1], eps_tshirt[1])

    targets = torch.tensor([6, 0, 6])

    def ce(latent):
        with torch.no_grad():
            eps = synth._predict_noise(latent, t, text)
            ab = synth.scheduler.alphas_cumprod[t]
            x0 = (latent - (1 - ab).sqrt() * eps) / ab.sqrt()
            return F.cross_entropy(distiller.teacher(synth._decode(x0), mode='tensor'),
                                   targets)

    before = ce(z)
    z_new, _, losses = synth.guided_step(distiller, z, t, targets, text)
    assert torch.isclose(losses['loss_ce'], before, atol=1e-5)
    assert ce(z_new) < before - 1e-3, 'a guided step through the VAE must lower the CE'

    full = _synth(tiny_sd_pipeline, teacher_ckpt, class_names=FMNIST_CLASSES, cutmix_every=1,
                  repair_steps=1, num_inference_steps=3)
    full.set_work_dir(str(tmp_path))
    out = full.synthesizer.synthesize(full)
    images, logits = full.synthesizer.pool.sample(4)
    assert images.shape == (4, 1, 32, 32) and logits.shape == (4, 10)
    assert torch.isfinite(out['loss_ce']) and torch.isfinite(images).all()
    assert not any(k.split('.')[1] in ('unet', 'vae', 'text_encoder')
                   for k in full.state_dict() if k.startswith('synthesizer.'))


def test_latent_cutmix_mixes_the_right_regions():
    z = torch.stack([torch.full((2, 4, 4), float(i)) for i in range(3)])
    mask = torch.zeros(3, 1, 4, 4)
    mask[:, :, :2, :2] = 1  # a quarter of each latent
    partner = torch.tensor([1, 2, 0])
    targets = torch.eye(3)
    mixed, soft = DiffusionSynthesizer.latent_cutmix(z, targets, mask, partner)
    for i in range(3):
        assert torch.all(mixed[i, :, :2, :2] == float(partner[i]))  # pasted box
        inside = torch.zeros(4, 4, dtype=torch.bool)
        inside[:2, :2] = True
        assert torch.all(mixed[i][:, ~inside] == float(i))  # the rest untouched
    assert torch.allclose(soft[0], torch.tensor([0.75, 0.25, 0.0]))
    band = DiffusionSynthesizer.seam_band(F.pad(torch.ones(1, 1, 2, 2), (2, 2, 2, 2)))
    # ring around the 2x2 box in a 6x6 map: 4x4 dilated minus empty erosion
    assert int(band.sum()) == 16 and band[0, 0, 0, 0] == 0
    box = DiffusionSynthesizer.box_mask(16, 8, (0.25, 0.25))
    assert torch.all(box.flatten(1).sum(1) == 16)
    # half-precision latents stay half precision (the float32 mask promoted them)
    half, _ = DiffusionSynthesizer.latent_cutmix(z.half(), targets, mask, partner)
    assert half.dtype == torch.float16 and torch.equal(half.float(), mixed)


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_half_precision_latent_model_synthesises_through_cutmix_and_repair(
        tiny_sd_pipeline, teacher_ckpt, tmp_path, dtype):
    """The CIFAR recipe's `dtype='float16'`: its first latent CutMix turned the latents into
    float32 and the repair pass's UNet refused them ("mat1 and mat2 must have the same
    dtype"), so the recipe failed at its fifth denoising step."""
    distiller = _synth(tiny_sd_pipeline, teacher_ckpt, class_names=FMNIST_CLASSES,
                       dtype=dtype, cutmix_every=1, repair_steps=1, num_inference_steps=3)
    distiller.set_work_dir(str(tmp_path))
    out = distiller.synthesizer.synthesize(distiller)
    images, logits = distiller.synthesizer.pool.sample(4)
    assert images.dtype == torch.float32 and torch.isfinite(images).all()
    assert torch.isfinite(out['loss_ce'])


def test_synthesize_shapes_dtypes_cutmix_and_repair(tiny_pipeline, teacher_ckpt, tmp_path):
    distiller = _synth(tiny_pipeline, teacher_ckpt, cutmix_every=1, repair_steps=1,
                       adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl',
                                        agree_only=True))
    distiller.set_work_dir(str(tmp_path))
    out = distiller.synthesizer.synthesize(distiller)
    images, logits = distiller.synthesizer.pool.sample(4)
    assert images.shape == (4, 1, 32, 32) and images.dtype == torch.float32
    assert {'loss_ce', 'loss_bn', 'loss_adv', 'target_acc'} <= set(out)
    # pixels stay within the real pixel range after normalisation
    assert images.min() >= (0 - 72.94) / 90 - 1e-2 and images.max() <= (255 - 72.94) / 90 + 1e-2
    # bfloat16 diffusion model (the teacher stays float32)
    bf16 = _synth(tiny_pipeline, teacher_ckpt, dtype='bfloat16')
    assert bf16.synthesizer.unet.dtype == torch.bfloat16
    bf16.set_work_dir(str(tmp_path / 'bf16'))
    bf16.synthesizer.synthesize(bf16)
    assert bf16.synthesizer.pool.sample(2)[0].dtype == torch.float32
    # the frozen diffusion model is not part of the checkpoint
    assert not any('unet' in k for k in distiller.state_dict())


def test_cam_loss_known_values_and_clear_error():
    resnet = dict(type='ImageClassifier',
                  backbone=dict(type='ResNet_CIFAR', depth=18, num_stages=4,
                                out_indices=(3, )),
                  neck=dict(type='GlobalAveragePooling'),
                  head=dict(type='LinearClsHead', num_classes=10, in_channels=512))
    model = MODELS.build(resnet).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, fmap = cam_forward(model, images)
        assert torch.allclose(logits, model(images, mode='tensor'), atol=1e-5)
        loss = CAMConsistencyLoss()
        cls = logits.argmax(1)
        assert loss(fmap, fmap, model.head.fc, model.head.fc, cls).item() == 0
        # a map that is zero where the teacher's is 1 everywhere -> MSE 1
        ones = torch.ones(1, 1, 4, 4)
        fc = torch.nn.Linear(1, 1)
        fc.weight.data.fill_(1.0)
        student = ones.clone()
        student[..., :2, :] = 0  # half the map dark
        assert loss(student, ones, fc, fc, torch.tensor([0])).item() == pytest.approx(0.5)
    with pytest.raises(TypeError, match='no class activation map|not'):
        cam_forward(MODELS.build(LENET5BN), torch.randn(1, 1, 32, 32))


def test_cam_loss_on_lenet_fails_at_build_time(tiny_pipeline, teacher_ckpt):
    with pytest.raises(TypeError, match='remove model.cam_loss'):
        from mmdfkd.models.algorithms import DataFreeDistiller
        DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF, teacher_ckpt=teacher_ckpt,
                          synthesizer=dict(type='DiffusionSynthesizer',
                                           pipeline_path=tiny_pipeline,
                                           image_shape=(1, 32, 32), batch_size=2),
                          distill_loss=dict(type='KLDivergenceLoss'),
                          cam_loss=dict(type='CAMConsistencyLoss'))


@needs_fmnist
def test_fmnist_config_trains_and_resumes_with_its_pool(tiny_pipeline, teacher_ckpt, tmp_path):
    work = str(tmp_path / 'run')
    opts = {'model.synthesizer.pipeline_path': tiny_pipeline,
            'model.synthesizer.num_inference_steps': 3, 'model.synthesizer.cutmix_every': 2,
            'model.synthesizer.batch_size': 4, 'model.student_batch_size': 8,
            'custom_hooks': []}
    runner = build_runner(datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=2, **opts))
    runner.train()
    assert len(runner.model.synthesizer.pool) == 8
    cfg = datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=3, resume=True, **opts)
    cfg['train_cfg']['val_interval'] = 3
    resumed = build_runner(cfg)
    resumed.train()
    assert resumed.iter == 3 and len(resumed.model.synthesizer.pool) == 12
    assert last_checkpoint(work).endswith('iter_3.pth')


def test_cifar_config_trains_an_iteration_with_cam_loss(tiny_sd_pipeline, tmp_path):
    """The CIFAR-10 recipe (Stable-Diffusion layout with class prompts, ResNet-34 ->
    ResNet-18, KL T=30 + CAM consistency) with a tiny random SD-layout model in place of
    Stable Diffusion v1.5 (not on this machine)."""
    from mmengine.config import Config

    from mmdfkd.apis import load_config
    path = tiny_sd_pipeline
    config = 'configs/diffdfkd/diffdfkd_resnet34_resnet18_cifar10.py'
    cfg = Config.fromfile(config)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': MODELS.build(cfg.model.teacher).state_dict()}, ckpt)
    opts = {'teacher_ckpt': ckpt, 'train_cfg.max_iters': 1, 'train_cfg.val_interval': 1,
            'model.synthesizer.pipeline_path': path, 'model.synthesizer.resolution': 32,
            'model.synthesizer.dtype': 'float32', 'model.synthesizer.batch_size': 2,
            'model.synthesizer.num_inference_steps': 2, 'model.student_steps': 1,
            'model.student_batch_size': 2, 'model.warmup_iters': 0,
            'default_hooks.checkpoint.interval': 1, 'custom_hooks': [],
            'val_dataloader': None, 'val_cfg': None, 'val_evaluator': None,
            'test_dataloader': None, 'test_cfg': None, 'test_evaluator': None}
    cfg = load_config(config, cfg_options=opts, work_dir=str(tmp_path / 'run'))
    cfg.experiment_name = 'test_diffdfkd_cifar'
    runner = build_runner(cfg)
    logged = {}
    orig = runner.model.student_step

    def spy(optim_wrapper):
        out = orig(optim_wrapper)
        logged.update(out)
        return out

    runner.model.student_step = spy
    runner.train()
    assert 'loss_cam' in logged and torch.isfinite(logged['loss_cam'])
    # the maps the loss reads during the ordinary forward are the models' final conv maps
    model = runner.model.eval()
    images = torch.randn(2, 3, 32, 32, device=next(model.student.parameters()).device)
    with torch.no_grad():
        logits = model.student(images, mode='tensor')
        s_map = deepest_output(model._cam_recorders[0].outputs()[0])
        ref_logits, ref_map = cam_forward(model.student, images)
    assert torch.allclose(s_map, ref_map) and torch.allclose(logits, ref_logits, atol=1e-5)
    assert len(runner.model.synthesizer.pool) == 2


def test_mean_and_std_must_match_the_image_channels(tiny_pipeline, teacher_ckpt):
    """Three means for a greyscale teacher used to fail in a buffer `expand`."""
    with pytest.raises(ValueError, match=r'model.synthesizer.mean needs 1 value \(one per channel.*'
                                         r'got \[1.0, 2.0, 3.0\]'):
        _synth(tiny_pipeline, teacher_ckpt, mean=[1.0, 2.0, 3.0])


def test_decoded_images_are_contiguous_for_models_that_flatten_with_view(tiny_sd_pipeline):
    """The VAE decoder gives channels-last memory; passed on as it was, mmpretrain's VGG
    (`x.view(n, -1)` after its convs) failed in DiffDFKD as student and as teacher."""
    synth = MODELS.build(dict(type='DiffusionSynthesizer', pipeline_path=tiny_sd_pipeline,
                              image_shape=(3, 48, 48), num_classes=10, mean=[127.5],
                              std=[127.5], dtype='float32'))
    images = synth._decode(synth._initial_noise(2))
    assert images.shape == (2, 3, 48, 48) and images.is_contiguous()
    features = torch.nn.Conv2d(3, 4, 3)(images)
    assert features.view(2, -1).shape == (2, 4 * 46 * 46)
