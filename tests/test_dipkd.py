"""DIP-KD: image priors, the three phases on the runner, budget stop + exact resume."""
import glob
import os.path as osp

import pytest
import torch

from mmdfkd.apis import build_runner
from mmdfkd.apis.synthesize import build_from_checkpoint, export_image_folder
from mmdfkd.models.utils.image_priors import (diverse_priors, gaussian_blur, grating_texture,
                                              hierarchical_noise, random_resized_crop,
                                              semantic_mask, seeded)
from mmdfkd.registry import MODELS

from .conftest import config_path, needs_fmnist, small_eval_options
from .runner_utils import last_checkpoint

CONFIG = 'dipkd/dipkd_lenet5_lenet5_fmnist.py'
LENET5 = dict(type='ImageClassifier',
              backbone=dict(type='LeNet', in_channels=1, width=1.0, with_bn=False),
              head=dict(type='LinearClsHead', num_classes=10, in_channels=84))


@pytest.fixture(scope='module')
def lenet5_ckpt(tmp_path_factory) -> str:
    from mmengine.registry import init_default_scope
    init_default_scope('mmdfkd')
    torch.manual_seed(1)
    path = str(tmp_path_factory.mktemp('lenet5') / 'lenet5.pth')
    torch.save({'state_dict': MODELS.build(LENET5).state_dict()}, path)
    return path


def test_priors_are_deterministic_under_a_seed_and_in_range():
    kwargs = dict(rotation=45, elastic_alpha=3.0, crop_scale=(0.5, 1.0), mix_prob=0.5)
    with seeded(7):
        a = diverse_priors(32, 1, (32, 32), **kwargs)
    outside = torch.rand(3)  # the caller's RNG is left alone by seeded()
    with seeded(7):
        b = diverse_priors(32, 1, (32, 32), **kwargs)
    with seeded(8):
        c = diverse_priors(32, 1, (32, 32), **kwargs)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == (32, 1, 32, 32)
    torch.manual_seed(0)
    ref = torch.rand(3)
    torch.manual_seed(0)
    with seeded(7):
        diverse_priors(4, 1, (32, 32))
    assert torch.equal(torch.rand(3), ref)
    del outside


def test_hierarchical_noise_and_semantic_mask():
    with seeded(0):
        noise = hierarchical_noise(64, 1, (32, 32))
        mask = semantic_mask(64, (32, 32))
    assert noise.min() >= 0 and noise.max() <= 1
    # Coarse scales make neighbouring pixels correlated, unlike plain uniform noise.
    def neighbour_corr(x):
        return torch.corrcoef(torch.stack([x[..., :-1].flatten(), x[..., 1:].flatten()]))[0, 1]
    assert neighbour_corr(noise) > 0.5 > neighbour_corr(torch.rand(64, 1, 32, 32)) + 0.4
    # The blur/sharpen iteration converges to nearly binary blobs covering both sides.
    assert ((mask < 0.1) | (mask > 0.9)).float().mean() > 0.6
    assert 0.2 < mask.mean() < 0.8


def test_texture_only_darkens_with_oriented_stripes_of_the_asked_frequency():
    kwargs = dict(rotation=45, background_prob=1.0, zoom_range=(0.6, 1.0), aspect_sigma=0.4)
    with seeded(5):
        plain = diverse_priors(16, 1, (32, 32), **kwargs)
    with seeded(5):
        textured = diverse_priors(16, 1, (32, 32), texture_prob=1.0, **kwargs)
    # drawn last: the untextured part of a seeded batch is unchanged, the texture only dims it
    assert (textured <= plain + 1e-6).all() and not torch.equal(textured, plain)
    with seeded(5):
        off = diverse_priors(16, 1, (32, 32), texture_prob=0.0, **kwargs)
    assert torch.equal(off, plain)
    with seeded(0):
        tex = grating_texture(256, (32, 32), freq=(8.0, 8.0))
    assert tex.shape == (256, 1, 32, 32) and tex.min() >= 0 and tex.max() <= 1
    # a grating of 8 cycles per 32 rows: its spectrum peaks at radius 8 (up to the angle's
    # rounding onto the pixel grid), wherever the orientation points
    spectrum = torch.fft.fft2(tex[:, 0] - tex[:, 0].mean((1, 2), keepdim=True)).abs()
    fy, fx = torch.meshgrid(torch.fft.fftfreq(32) * 32, torch.fft.fftfreq(32) * 32,
                            indexing='ij')
    radius = (fy ** 2 + fx ** 2).sqrt().flatten()
    peak = radius[spectrum.flatten(1).argmax(1)]
    deep = (tex.amax((1, 2, 3)) - tex.amin((1, 2, 3))) > 0.2  # skip near-zero depths
    assert ((peak[deep] - 8).abs() <= 1.5).float().mean() > 0.95


def test_batched_blur_and_crop_match_torchvision():
    from torchvision.transforms import v2
    from torchvision.transforms.v2 import functional as TF
    images = torch.rand(6, 2, 32, 32)
    for k, sigma in ((7, 1.5), (17, 2.0)):
        assert torch.allclose(gaussian_blur(images, k, sigma),
                              TF.gaussian_blur(images, [k, k], [sigma, sigma]), atol=1e-5)
    # Same seed, same boxes: torchvision's per-image resized_crop, away from the box edges
    # (torchvision clamps at the crop's edge, grid_sample at the image's).
    with seeded(3):
        ours = random_resized_crop(images, (0.3, 1.0))
    crop = v2.RandomResizedCrop((32, 32), scale=(0.3, 1.0))
    with seeded(3):
        boxes = [crop.make_params([img]) for img in images]
    ref = torch.stack([TF.resized_crop(img, b['top'], b['left'], b['height'], b['width'],
                                       [32, 32]) for img, b in zip(images, boxes)])
    assert any(b['height'] < 30 for b in boxes)
    assert torch.allclose(ours[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=1e-4)


def datafree_cfg(config: str, work_dir: str, teacher_ckpt: str, max_iters: int,
                 resume: bool = False, **options):
    import uuid

    from mmdfkd.apis import load_config
    opts = dict(small_eval_options(), teacher_ckpt=teacher_ckpt)
    opts.update({'train_cfg.max_iters': max_iters, 'train_cfg.val_interval': max_iters,
                 'default_hooks.logger.interval': 1,
                 'default_hooks.checkpoint.interval': max_iters})
    opts.update(options)
    cfg = load_config(config_path(*config.split('/')), cfg_options=opts, work_dir=work_dir,
                      resume='auto' if resume else None)
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:12]}'
    return cfg


def _small(budget: int, **extra) -> dict:
    opts = {'model.synthesizer.num_images': 60, 'model.synthesizer.batch_size': 20,
            'model.teacher.query_budget': budget, 'model.batch_size': 16,
            'model.phase_iters': dict(synthesis=3, primer=2, contrast=1, distill=2),
            'param_scheduler.primer.begin': 3, 'param_scheduler.primer.end': 5,
            'param_scheduler.primer.T_max': 2, 'param_scheduler.student.begin': 6,
            'param_scheduler.student.end': 8, 'param_scheduler.student.T_max': 2,
            'custom_hooks': [dict(type='SyntheticVisualizationHook', interval=3,
                                  num_samples=20)]}
    opts.update(extra)
    return opts


@needs_fmnist
def test_dipkd_budget_stop_then_resume_keeps_the_exact_count(lenet5_ckpt, tmp_path):
    work = str(tmp_path / 'run')
    # Budget 40 < 60 priors: the third synthesis batch is refused and training stops cleanly.
    runner = build_runner(datafree_cfg(CONFIG, work, lenet5_ckpt, max_iters=8,
                                       **_small(budget=40)))
    runner.train()
    model = runner.model
    assert int(model.teacher.queries) == 40 and len(model.synthesizer.pool) == 40
    assert runner.iter == 3
    ckpt = last_checkpoint(work)
    assert osp.basename(ckpt) == 'iter_3.pth'
    state = torch.load(ckpt, weights_only=False)['state_dict']
    assert int(state['teacher.queries']) == 40
    # No teacher weight is ever written to a checkpoint.
    assert not any(k.startswith('teacher.') and v.is_floating_point()
                   for k, v in state.items() if torch.is_tensor(v))
    log = open(next(iter(__import__('glob').glob(f'{work}/*/*.log')))).read()
    assert 'teacher query budget reached: 40 of 40 images spent' in log

    # Resume with a larger budget: the count continues exactly, the prior sequence too.
    resumed = build_runner(datafree_cfg(CONFIG, work, lenet5_ckpt, max_iters=8, resume=True,
                                        **_small(budget=60)))
    resumed.train()
    model = resumed.model
    assert int(model.teacher.queries) == 60 and len(model.synthesizer.pool) == 60
    assert resumed.iter == 8

    # Same config without the interruption: same pool, same count.
    straight = build_runner(datafree_cfg(CONFIG, str(tmp_path / 'straight'), lenet5_ckpt,
                                         max_iters=3, **_small(budget=60)))
    straight.train()
    assert int(straight.model.teacher.queries) == 60
    order = torch.arange(60)
    assert torch.equal(straight.model.synthesizer.pool.gather(order)['labels'],
                       model.synthesizer.pool.gather(order)['labels'])

    # Export the (contrast-refined) pool without asking the teacher anything.
    rebuilt = build_from_checkpoint(config_path(*CONFIG.split('/')), last_checkpoint(work),
                                    {'teacher_ckpt': lenet5_ckpt,
                                     **{k: v for k, v in _small(60).items()
                                        if k.startswith('model.')}})
    counts = export_image_folder(rebuilt, str(tmp_path / 'export'),
                                 [str(i) for i in range(10)])
    assert sum(counts.values()) == 60 and int(rebuilt.teacher.queries) == 60
    from mmpretrain.datasets import CustomDataset
    assert len(CustomDataset(data_root=str(tmp_path / 'export'), pipeline=[])) == 60

    # The black-box student exports as a plain mmpretrain model with the run's weights.
    from mmdfkd.apis.export import export_student
    ckpt, _ = export_student(config_path(*CONFIG.split('/')), last_checkpoint(work),
                             str(tmp_path / 'student'))
    exported = torch.load(ckpt, weights_only=False)['state_dict']
    assert exported.keys() == rebuilt.student.state_dict().keys()
    assert all(torch.equal(v, rebuilt.student.state_dict()[k]) for k, v in exported.items())


@needs_fmnist
@pytest.mark.parametrize('ablation', [
    {},  # all phases
    {'model.phase_iters': dict(synthesis=3, primer=2, contrast=0, distill=3)},
    {'model.phase_iters': dict(synthesis=3, primer=0, contrast=0, distill=5),
     'model.primer_weight': 0, 'model.synthesizer.hierarchical': False,
     'model.synthesizer.rotation': 0, 'model.synthesizer.elastic_alpha': 0,
     'model.synthesizer.crop_scale': None, 'model.synthesizer.mix_prob': 0},  # naive KD
    {'model.synthesizer.label_mix': 0.5},  # half of the queries spent on blends
])
def test_dipkd_phases_train_and_switch_off(ablation, lenet5_ckpt, tmp_path):
    opts = _small(budget=60, **ablation)
    if 'model.phase_iters' in ablation and ablation['model.phase_iters']['primer'] == 0:
        opts.update({'param_scheduler.primer.begin': 0, 'param_scheduler.primer.end': 1})
    runner = build_runner(datafree_cfg(CONFIG, str(tmp_path), lenet5_ckpt, max_iters=8,
                                       **opts))
    student_before = {k: v.clone() for k, v in runner.model.student.state_dict().items()}
    runner.train()
    model = runner.model
    assert int(model.teacher.queries) == 60
    assert any(not torch.equal(v, model.student.state_dict()[k])
               for k, v in student_before.items()), 'the student must have been trained'
    assert (model.primer is None) == (model.phase_iters['primer'] == 0)
    assert (model.contrast is None) == (model.phase_iters['contrast'] == 0)


def test_label_mix_blends_pairs_of_differently_labelled_priors(tmp_path):
    synth = MODELS.build(dict(type='ImagePriorSynthesizer', image_shape=(1, 4, 4),
                              num_images=16, batch_size=8, label_mix=0.5,
                              label_mix_lam=(0.25, 0.75)))
    synth.set_work_dir(str(tmp_path))
    assert synth.num_plain == 8
    # Plain "priors" with a single lit pixel each: a blend shows which two it mixes.
    plain = torch.eye(16)[:8].view(8, 1, 4, 4)
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
    synth.pool.add(plain, labels=labels)
    blends = synth.blend_labelled_pairs(64, seed=3)
    assert torch.equal(blends, synth.blend_labelled_pairs(64, seed=3))
    assert not torch.equal(blends, synth.blend_labelled_pairs(64, seed=4))
    flat = blends.flatten(1)
    assert flat[:, 8:].abs().max() == 0  # only the plain priors are mixed
    for row in flat:
        lit = row.nonzero().flatten()
        assert len(lit) == 2 and labels[lit[0]] != labels[lit[1]]
        assert torch.isclose(row.sum(), torch.tensor(1.0), atol=1e-3)
        assert 0.25 - 1e-3 <= row[lit].min() and row[lit].max() <= 0.75 + 1e-3
    # Label 2 is one prior of eight: it takes part in 37 % of the blends drawn uniformly,
    # in 2/3 of those drawn with balanced labels (every label pair equally likely).
    def share_of_label_2() -> float:
        return (synth.blend_labelled_pairs(600, seed=0).flatten(1)[:, 7] > 0).float().mean()
    assert 0.3 < share_of_label_2() < 0.45
    synth.label_mix_balanced = True
    assert 0.6 < share_of_label_2() < 0.74
    # Overlay: both objects at full intensity (pixel-wise maximum).
    synth.label_mix_mode = 'overlay'
    for row in synth.blend_labelled_pairs(32, seed=5).flatten(1):
        lit = row.nonzero().flatten()
        assert len(lit) == 2 and labels[lit[0]] != labels[lit[1]] and torch.all(row[lit] == 1)
    with pytest.raises(ValueError, match='label_mix'):
        MODELS.build(dict(type='ImagePriorSynthesizer', label_mix=1.0))
    with pytest.raises(ValueError, match="label_mix_mode must be 'blend' or 'overlay'"):
        MODELS.build(dict(type='ImagePriorSynthesizer', label_mix=0.5, label_mix_mode='sum'))


def test_dipkd_config_errors(lenet5_ckpt):
    base = dict(type='DIPKD', student=LENET5,
                teacher=dict(type='HardLabelTeacher', num_classes=10, model=LENET5,
                             checkpoint=lenet5_ckpt),
                synthesizer=dict(type='ImagePriorSynthesizer', num_images=10, batch_size=5),
                phase_iters=dict(synthesis=2, primer=1, distill=1))
    with pytest.raises(ValueError, match='primer_weight needs a primer'):
        MODELS.build(dict(base, phase_iters=dict(synthesis=2, distill=1)))
    with pytest.raises(ValueError, match='needs model.contrast'):
        MODELS.build(dict(base, phase_iters=dict(synthesis=2, primer=1, contrast=1)))
    with pytest.raises(TypeError, match='must be a teacher wrapper'):
        MODELS.build(dict(base, teacher=LENET5))
    with pytest.raises(ValueError, match='model.synthesizer.texture_prob'):
        MODELS.build(dict(base, synthesizer=dict(base['synthesizer'], texture_prob=1.5)))
    with pytest.raises(ValueError, match='batch_size and num_images must be >= 1, got 0 and 10'):
        MODELS.build(dict(base, synthesizer=dict(base['synthesizer'], batch_size=0)))
    with pytest.raises(ValueError, match='model.batch_size must be an int >= 1'):
        MODELS.build(dict(base, batch_size=0))
    with pytest.raises(ValueError, match='model.unlabelled_batch_size must be an int >= 0'):
        MODELS.build(dict(base, unlabelled_batch_size=-1))
    with pytest.raises(ValueError, match=r'zoom_range must be None or \(low, high\)'):
        MODELS.build(dict(base, synthesizer=dict(base['synthesizer'], zoom_range=(0.0, 0.9))))
    with pytest.raises(ValueError, match="unlabelled_source must be 'priors' or 'overlays'"):
        MODELS.build(dict(base, unlabelled_batch_size=4, unlabelled_source='pool'))
    with pytest.raises(ValueError, match='unlabelled_batch_size > 0 feeds only the L1 term'):
        MODELS.build(dict(base, unlabelled_batch_size=4, primer_weight=0))
    # Image shape and class counts are checked on the student and primer at build time; the
    # black-box teacher is never run for it (no query is spent), its wrapper's count is used.
    with pytest.raises(ValueError, match=r'image_shape \(3, 32, 32\) does not fit model.student'):
        MODELS.build(dict(base, synthesizer=dict(base['synthesizer'], image_shape=(3, 32, 32))))
    with pytest.raises(ValueError, match='model.teacher.num_classes is 100 but model.student '
                                         'has 10 classes'):
        MODELS.build(dict(base, teacher=dict(base['teacher'], num_classes=100)))
    with pytest.raises(ValueError, match="model.student has 10 classes and model.primer 7"):
        MODELS.build(dict(base, primer=dict(LENET5, head=dict(LENET5['head'], num_classes=7))))
    model = MODELS.build(base)
    assert int(model.teacher.queries) == 0 and model.student.training
    assert model.phase_at(0) == ('synthesis', 0) and model.phase_at(3) == ('distill', 0)
    with pytest.raises(RuntimeError, match='set train_cfg.max_iters=4'):
        model.phase_at(4)


@needs_fmnist
def test_dipkd_loop_longer_than_phases_fails_at_once(lenet5_ckpt, tmp_path):
    runner = build_runner(datafree_cfg(CONFIG, str(tmp_path), lenet5_ckpt, max_iters=9,
                                       **_small(budget=60)))
    with pytest.raises(ValueError, match='set train_cfg.max_iters=8'):
        runner.train()
    assert int(runner.model.teacher.queries) == 0


DIPKD_CONFIGS = sorted(osp.basename(p)[:-3]
                       for p in glob.glob(config_path('dipkd', '*_fmnist.py')))


def test_dipkd_configs_are_all_found():
    assert {'dipkd_lenet5_lenet5_fmnist', 'dipkd_labelmix_lenet5_lenet5_fmnist',
            'dipkd_labelmix_texture_lenet5_lenet5_fmnist',
            'naive_kd_noise_lenet5_lenet5_fmnist'} <= set(DIPKD_CONFIGS)


@pytest.mark.parametrize('name', DIPKD_CONFIGS)
def test_every_dipkd_config_is_consistent_and_builds(name, lenet5_ckpt):
    from mmengine.config import Config
    cfg = Config.fromfile(config_path('dipkd', f'{name}.py'))
    phases = cfg.model.phase_iters
    assert sum(phases.values()) == cfg.train_cfg.max_iters
    synth = cfg.model.synthesizer
    assert phases['synthesis'] * synth.batch_size >= synth.num_images
    assert cfg.model.teacher.query_budget == synth.num_images
    for name_, sched in cfg.param_scheduler.items():
        if isinstance(sched, dict):
            assert sched['end'] <= cfg.train_cfg.max_iters, name_
    model_cfg = cfg.model.to_dict()
    model_cfg['teacher']['checkpoint'] = lenet5_ckpt
    model = MODELS.build(model_cfg)
    assert model.total_iters == cfg.train_cfg.max_iters
    # options set in a config reach the prior generator
    assert (model.synthesizer.priors.prior_kwargs.get('texture_prob', 0.0)
            == synth.get('texture_prob', 0.0))


def test_classifier_ensemble_answers_with_its_members_mean_logits():
    from mmengine.registry import init_default_scope

    from mmdfkd.models.utils import classifier_logits_and_features
    init_default_scope('mmdfkd')
    torch.manual_seed(0)
    ensemble = MODELS.build(dict(type='ClassifierEnsemble', model=LENET5, num_members=3))
    x = torch.randn(5, 1, 32, 32)
    members = ensemble.member_logits(x)
    assert len(members) == 3
    # independently initialised: the members disagree
    assert not torch.allclose(members[0], members[1])
    assert torch.allclose(ensemble(x), (members[0] + members[1] + members[2]) / 3, atol=1e-6)
    logits, feats = classifier_logits_and_features(ensemble, x)
    assert torch.allclose(logits, ensemble(x), atol=1e-6) and feats.shape == (5, 3 * 84)
    with pytest.raises(ValueError, match="mode='tensor'"):
        ensemble(x, mode='predict')
    with pytest.raises(ValueError, match='num_members'):
        MODELS.build(dict(type='ClassifierEnsemble', model=LENET5, num_members=0))


@needs_fmnist
def test_dipkd_ensemble_primer_trains_every_member_and_teaches_the_student(lenet5_ckpt,
                                                                           tmp_path):
    opts = _small(budget=60, **{'model.primer': dict(type='ClassifierEnsemble',
                                                     model=LENET5, num_members=2)})
    runner = build_runner(datafree_cfg(CONFIG, str(tmp_path), lenet5_ckpt, max_iters=8,
                                       **opts))
    members_before = [{k: v.clone() for k, v in m.state_dict().items()}
                      for m in runner.model.primer.members]
    runner.train()
    model = runner.model
    for before, member in zip(members_before, model.primer.members):
        assert any(not torch.equal(v, member.state_dict()[k]) for k, v in before.items()), \
            'every member of the primer must be trained'
    state = torch.load(last_checkpoint(str(tmp_path)), weights_only=False)['state_dict']
    assert any(k.startswith('primer.members.1.') for k in state)


def test_sample_overlays_are_maxima_of_two_pooled_images(tmp_path):
    synth = MODELS.build(dict(type='ImagePriorSynthesizer', image_shape=(1, 4, 4),
                              num_images=16, batch_size=8))
    synth.set_work_dir(str(tmp_path))
    # Pooled "images" with a single lit pixel each: an overlay shows which two it took.
    synth.pool.add(torch.eye(16).view(16, 1, 4, 4), labels=torch.arange(16) % 3)
    torch.manual_seed(0)
    overlays = synth.sample_overlays(400).flatten(1)
    lit = (overlays > 0).sum(1)
    assert torch.all(overlays[overlays > 0] == 1)  # maxima, not blends
    assert torch.all((lit == 1) | (lit == 2)) and (lit == 2).float().mean() > 0.85
    # Both images are drawn uniformly over the pool: every pooled image takes part.
    assert torch.all(overlays.sum(0) > 0)


@needs_fmnist
def test_dipkd_wide_primer_teaches_the_student_on_free_overlays(lenet5_ckpt, tmp_path):
    from mmengine.config import Config
    wide = Config.fromfile(config_path(
        'dipkd', 'dipkd_wide_primer_lenet5_lenet5_fmnist.py')).model.primer.to_dict()
    opts = _small(budget=60, **{'model.primer': wide, 'model.unlabelled_batch_size': 8,
                                'model.unlabelled_source': 'overlays'})
    runner = build_runner(datafree_cfg(CONFIG, str(tmp_path), lenet5_ckpt, max_iters=8,
                                       **opts))
    model = runner.model
    assert model.primer.backbone.out_channels == 4 * model.student.backbone.out_channels
    calls = []
    sample_overlays = model.synthesizer.sample_overlays
    model.synthesizer.sample_overlays = lambda n: calls.append(n) or sample_overlays(n)
    runner.train()
    # One batch of overlays per distillation step, and none of them was sent to the teacher.
    assert calls == [8, 8]
    assert int(model.teacher.queries) == 60 and int(model.teacher.cache_hits) == 0


@needs_fmnist
def test_served_teacher_gives_the_same_run_as_the_local_one(lenet5_ckpt, tmp_path):
    """The same teacher through tools/serve_teacher.py buys the same labels, and the run is
    bit-identical to the local one: building the local teacher's model (whose random
    initialisation its checkpoint overwrites) must not move the run's random streams, or the
    remote-HTTP benchmark row trains another student on the same labels."""
    from .test_remote_teacher import Server, _free_port
    opts = _small(budget=60)

    def run(work: str, **extra) -> dict:
        runner = build_runner(datafree_cfg(CONFIG, str(tmp_path / work), lenet5_ckpt,
                                           max_iters=8, **opts, **extra))
        runner.train()
        return {k: v for k, v in runner.model.state_dict().items()
                if torch.is_tensor(v) and k.startswith(('student.', 'primer.', 'contrast.'))}

    local = run('local')
    server = Server(lenet5_ckpt, _free_port(),
                    config=config_path('teachers', 'lenet5_fmnist.py')).start()
    try:
        remote = run('remote', **{'model.teacher.model': None,
                                  'model.teacher.checkpoint': None,
                                  'model.teacher.url': server.url})
        assert server.health()['queries'] == 60
    finally:
        server.stop()
    assert local.keys() == remote.keys() and local
    for key, value in local.items():
        torch.testing.assert_close(remote[key], value, rtol=0, atol=0, msg=key)


def export_onnx(checkpoint: str, path: str) -> str:
    """The LeNet-5 teacher of ``checkpoint`` as an .onnx file (logits out, any batch size),
    as a user holding only an exported model would have it."""
    model = MODELS.build(LENET5)
    model.load_state_dict(torch.load(checkpoint, weights_only=False)['state_dict'])

    class Logits(torch.nn.Module):
        def __init__(self, classifier):
            super().__init__()
            self.classifier = classifier

        def forward(self, images):
            return self.classifier(images, mode='tensor')

    torch.onnx.export(Logits(model.eval()), (torch.zeros(2, 1, 32, 32), ), path, dynamo=False,
                      input_names=['images'], output_names=['logits'],
                      dynamic_axes={'images': {0: 'n'}, 'logits': {0: 'n'}})
    return path


@needs_fmnist
def test_an_onnx_teacher_gives_the_same_run_as_the_local_one(lenet5_ckpt, tmp_path):
    """A teacher handed over as an .onnx file only (model.teacher.onnx, run by onnxruntime):
    DIP-KD buys the same top-1 labels as from the torch model, so the run is the same."""
    pytest.importorskip('onnxruntime')
    onnx_path = export_onnx(lenet5_ckpt, str(tmp_path / 'teacher.onnx'))
    opts = _small(budget=60)

    def run(work: str, **extra) -> dict:
        runner = build_runner(datafree_cfg(CONFIG, str(tmp_path / work), lenet5_ckpt,
                                           max_iters=8, **opts, **extra))
        runner.train()
        assert int(runner.model.teacher.queries) == 60
        return {k: v for k, v in runner.model.state_dict().items()
                if torch.is_tensor(v) and k.startswith(('student.', 'primer.', 'contrast.'))}

    local = run('local')
    from_onnx = run('onnx', **{'model.teacher.model': None, 'model.teacher.checkpoint': None,
                               'model.teacher.onnx': onnx_path})
    assert local.keys() == from_onnx.keys() and local
    for key, value in local.items():
        torch.testing.assert_close(from_onnx[key], value, rtol=0, atol=0, msg=key)


@needs_fmnist
def test_a_remote_teacher_that_stays_down_stops_with_a_checkpoint_of_every_query(lenet5_ckpt,
                                                                                 tmp_path):
    """A served teacher that went down for good used to crash the run without a checkpoint:
    every label bought since the last one was lost, and the resume bought them again. Now
    the iteration under way is the last, its checkpoint keeps the count and the answers, the
    error still ends the run, and the resume completes it with nothing bought twice."""
    from mmdfkd.models.teachers import TeacherUnavailableError

    from .test_remote_teacher import Server, _free_port
    work = str(tmp_path / 'run')
    server = Server(lenet5_ckpt, _free_port(),
                    config=config_path('teachers', 'lenet5_fmnist.py')).start()
    remote = {'model.teacher.model': None, 'model.teacher.checkpoint': None,
              'model.teacher.url': server.url,
              'model.teacher.remote': dict(batch_size=8, max_retries=1, backoff_s=0.05)}
    opts = dict(_small(budget=60), **remote)
    try:
        runner = build_runner(datafree_cfg(CONFIG, work, lenet5_ckpt, max_iters=8, **opts))
        client = runner.model.teacher._SourcedTeacher__source
        post, posts = client._post, []

        def post_then_go_down(images):
            answer = post(images)
            posts.append(len(images))
            if len(posts) == 4:  # 20 + 8 images: down inside the second synthesis batch
                server.stop()
            return answer

        client._post = post_then_go_down
        with pytest.raises(TeacherUnavailableError):
            runner.train()
        assert runner.iter == 2 and osp.basename(last_checkpoint(work)) == 'iter_2.pth'
        state = torch.load(last_checkpoint(work), weights_only=False)['state_dict']
        assert int(state['teacher.queries']) == 28  # what the server answered
        assert state['teacher._extra_state']['keys'].shape[0] == 28
        log = open(glob.glob(f'{work}/*/*.log')[0]).read()
        assert 'Stopping at iteration 2' in log and '--resume' in log

        server.start()
        resumed = build_runner(datafree_cfg(CONFIG, work, lenet5_ckpt, max_iters=8,
                                            resume=True, **opts))
        resumed.train()
        assert resumed.iter == 8 and len(resumed.model.synthesizer.pool) == 60
        # The resume draws the broken batch again (the priors follow the pool's batch
        # count): its 8 answered images come from the cache, the restarted server sells
        # the other 32, and the pool is the one an unbroken run buys, at its price.
        assert server.health()['queries'] == 32
        assert int(resumed.model.teacher.queries) == 60
        assert int(resumed.model.teacher.cache_hits) == 8
    finally:
        server.stop()
    straight = build_runner(datafree_cfg(CONFIG, str(tmp_path / 'straight'), lenet5_ckpt,
                                         max_iters=3, **_small(budget=60)))
    straight.train()
    order = torch.arange(60)
    assert torch.equal(straight.model.synthesizer.pool.gather(order)['labels'],
                       resumed.model.synthesizer.pool.gather(order)['labels'])
