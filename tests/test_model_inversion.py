import glob

import pytest
import torch

from mmdfkd.apis import build_runner
from mmdfkd.apis.synthesize import build_from_checkpoint, export_image_folder
from mmdfkd.models.losses import TotalVariationLoss

from .conftest import config_path, needs_fmnist
from .runner_utils import datafree_cfg, last_checkpoint

POOL_CONFIGS = ['deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py',
                'deepinversion/deepinversion_priors_lenet5bn_lenet5half_fmnist.py',
                'deepinversion/deepinversion_priors_sliced_lenet5bn_lenet5half_fmnist.py',
                'deepinversion/deepinversion_priors_sliced_mixup_lenet5bn_lenet5half_fmnist.py',
                'deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
                'cmi/cmi_lenet5bn_lenet5half_fmnist.py',
                'fast_dfkd/fast_dfkd_lenet5bn_lenet5half_fmnist.py',
                'fast_dfkd/fast_dfkd_short_lenet5bn_lenet5half_fmnist.py',
                'fast_dfkd/fast_dfkd_priors_folded_lenet5bn_lenet5half_fmnist.py']
CONFIG_DI = 'deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py'
SMALL = {'model.synthesizer.iterations': 3, 'model.synthesizer.batch_size': 20,
         'custom_hooks': []}


def test_total_variation_known_value():
    img = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # horizontal differences: 1, 1 -> mean sq 1; vertical: 0, 0 -> 0
    assert TotalVariationLoss(p=2)(img).item() == pytest.approx(1.0)
    assert TotalVariationLoss(p=1, loss_weight=2)(img * 3).item() == pytest.approx(6.0)


@needs_fmnist
@pytest.mark.parametrize('config', POOL_CONFIGS)
def test_pool_method_trains_resumes_with_pool_and_exports(config, teacher_ckpt, tmp_path):
    CONFIG = config
    work = str(tmp_path / 'run')
    # warmup_iters=1: the first iteration only synthesises, so the student starts on a pool.
    opts = dict(SMALL, **{'model.warmup_iters': 1})
    runner = build_runner(datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=2, **opts))
    runner.train()
    pool = runner.model.synthesizer.pool
    assert len(pool) == 40  # two synthesised batches of 20
    assert len(glob.glob(f'{work}/synthetic_pool/*.pt')) == 2
    # Inversion queries the teacher at every optimisation step
    assert int(runner.model.teacher_queries) >= 2 * 3 * 20
    state = {k: v.clone() for k, v in runner.model.synthesizer.state_dict().items()
             if torch.is_tensor(v)}

    cfg = datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=3, resume=True, **opts)
    cfg['train_cfg']['val_interval'] = 3
    resumed = build_runner(cfg)
    seen = {}
    orig = type(resumed.model).train_step

    def spy(module_self, data, optim_wrapper):
        seen.setdefault('pool', len(module_self.synthesizer.pool))
        seen.setdefault('state', {k: v.clone() for k, v in
                                  module_self.synthesizer.state_dict().items()
                                  if torch.is_tensor(v)})
        return orig(module_self, data, optim_wrapper)

    resumed.model.train_step = spy.__get__(resumed.model)
    resumed.train()
    assert seen['pool'] == 40, 'resume must restore the pool index'
    # generator / meta generator, BN-momentum EMA, contrastive head and memory bank, counters
    assert seen['state'].keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(seen['state'][k], v), f'{k} not restored on resume'
    assert len(resumed.model.synthesizer.pool) == 60

    model = build_from_checkpoint(config_path(*CONFIG.split('/')), last_checkpoint(work))
    classes = [str(i) for i in range(10)]
    counts = export_image_folder(model, str(tmp_path / 'export'), classes)
    assert sum(counts.values()) == 60
    from mmpretrain.datasets import CustomDataset
    ds = CustomDataset(data_root=str(tmp_path / 'export'), pipeline=[])
    assert len(ds) == 60 and len(ds.CLASSES) == 10
    import os.path as osp
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        folder = osp.basename(osp.dirname(info['img_path']))
        assert int(folder.split('_')[0]) == info['gt_label']  # folder order == class index


@needs_fmnist
def test_a_crash_after_a_checkpoint_resumes_with_the_checkpointed_pool(teacher_ckpt, tmp_path):
    """A FIFO pool at its cap drops a batch per iteration. The files the checkpoint names
    must outlive a crash a few iterations later, so the resume trains on the checkpoint's
    images (it used to resume with what eviction had left, with a warning)."""
    work = str(tmp_path / 'run')
    opts = dict(SMALL, **{'model.synthesizer.pool.max_images': 40})  # two batches of 20
    build_runner(datafree_cfg(CONFIG_DI, work, teacher_ckpt, max_iters=2, **opts)).train()
    saved = torch.load(last_checkpoint(work), weights_only=False)
    index = saved['state_dict']['synthesizer.pool._extra_state']['batches']
    images = torch.cat([torch.load(f'{work}/synthetic_pool/{name}')['images'] for name, _ in index])

    crashing = build_runner(datafree_cfg(CONFIG_DI, work, teacher_ckpt, max_iters=6,
                                         resume=True, **opts))
    orig = type(crashing.model).train_step

    def crash_after_two(module_self, data, optim_wrapper):
        out = orig(module_self, data, optim_wrapper)
        if crashing.iter == 3:  # iterations 3 and 4 have dropped both checkpointed batches
            raise RuntimeError('simulated crash')
        return out

    crashing.model.train_step = crash_after_two.__get__(crashing.model)
    with pytest.raises(RuntimeError, match='simulated crash'):
        crashing.train()
    assert [n for n, _ in crashing.model.synthesizer.pool._batches] != [n for n, _ in index]

    resumed = build_runner(datafree_cfg(CONFIG_DI, work, teacher_ckpt, max_iters=3,
                                        resume=True, **opts))
    seen = {}

    def spy(module_self, data, optim_wrapper, _orig=orig):
        pool = module_self.synthesizer.pool
        seen.setdefault('iter', resumed.iter)
        seen.setdefault('batches', list(pool._batches))
        seen.setdefault('images', pool.gather(torch.arange(len(pool)))['images'])
        return _orig(module_self, data, optim_wrapper)

    resumed.model.train_step = spy.__get__(resumed.model)
    resumed.train()
    assert seen['iter'] == 2 and seen['batches'] == [tuple(b) for b in index]
    torch.testing.assert_close(seen['images'], images.float())


FMNIST_PRIORS = dict(type='ImagePriorGenerator', image_shape=(1, 32, 32), mean=[72.94],
                     std=[90.0], hierarchical=True, rotation=45.0, elastic_alpha=3.0,
                     elastic_sigma=2.0, background_prob=1.0, zoom_range=(0.6, 0.8))


def test_deepinversion_starts_from_image_priors(teacher_ckpt, tmp_path):
    """``init`` replaces the Gaussian start by image priors: with a zero learning rate the
    pooled images are the priors themselves (exact black margins from the zoom-out), never
    noise; a shape mismatch or an unknown prior option is refused."""
    from mmdfkd.models.algorithms import DataFreeDistiller

    from .conftest import LENET5BN, LENET5HALF
    black = (0 - 72.94) / 90.0

    def run(init):
        synth = dict(type='InversionSynthesizer', image_shape=(1, 32, 32), num_classes=10,
                     batch_size=8, iterations=1, lr=0.0, init=init)
        distiller = DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF,
                                      synthesizer=synth, teacher_ckpt=teacher_ckpt,
                                      distill_loss=dict(type='KLDivergenceLoss'))
        distiller.set_work_dir(str(tmp_path / str(init is None)))
        distiller.synthesizer.synthesize(distiller, None)
        images, _ = distiller.synthesizer.pool.sample(8)
        return images

    priors = run(FMNIST_PRIORS)
    # zoom-out <= 0.8 leaves black rows at the top and bottom of every prior
    assert torch.allclose(priors[:, :, 0, :], torch.full_like(priors[:, :, 0, :], black),
                          atol=1e-2)
    assert priors.min() >= black - 1e-2 and priors.max() <= (255 - 72.94) / 90 + 1e-2
    noise = run(None)
    assert (noise[:, :, 0, :] - black).abs().min() > 0  # Gaussian start: no exact black
    with pytest.raises(ValueError, match='init.image_shape'):
        run(dict(FMNIST_PRIORS, image_shape=(3, 32, 32)))
    with pytest.raises(TypeError, match="unknown prior option.*'rotaton'"):
        run(dict(FMNIST_PRIORS, rotaton=10.0))


def test_deepinversion_competition_term_runs_the_student_in_eval_mode(teacher_ckpt, tmp_path):
    """As in DeepInversion's reference ("net_student.eval()" for the competition term): the
    synthesis steps used to run the student in train mode, so the term used batch statistics
    of images still being optimised and moved the student's BN running statistics."""
    from .runner_utils import run_datafree
    runner = run_datafree('deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py',
                          str(tmp_path / 'run'), teacher_ckpt, max_iters=1,
                          **{'model.warmup_iters': 5, 'val_cfg': None,
                             'val_dataloader': None, 'val_evaluator': None})
    model = runner.model
    assert model.synthesizer.adversarial is not None and model.student.training
    stats = {k: v.clone() for k, v in model.student.state_dict().items()}
    modes = []
    original = model.student_forward

    def spy(images, **kwargs):
        modes.append(model.student.training)
        return original(images, **kwargs)

    model.student_forward = spy
    model.synthesizer_step(None)  # in warm-up: synthesis only, no student step
    assert modes and not any(modes) and model.student.training
    for key, value in model.student.state_dict().items():
        assert torch.equal(value, stats[key]), key
