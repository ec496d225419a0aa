"""CPSC-DFKD pieces: class-conditional generator, SupCon, IKD, and the fmnist config."""
import glob
import json
import math

import pytest
import torch

from mmdfkd.models.losses import (AdversarialDisagreementLoss, MSELogitLoss, SupConLoss,
                                  mse_logit_distance, supervised_contrastive)
from mmdfkd.models.synthesizers.generator import ConditionalBatchNorm2d, NearestUpsample2x
from mmdfkd.registry import MODELS

from .conftest import needs_fmnist
from .runner_utils import run_datafree

CONFIG = 'cpsc_dfkd/cpsc_dfkd_lenet5bn_lenet5half_fmnist.py'


def test_conditional_bn_gives_each_class_its_own_statistics():
    cbn = ConditionalBatchNorm2d(3, num_classes=4)
    with torch.no_grad():
        cbn.gamma.weight.copy_(torch.tensor([[1.0] * 3, [2.0] * 3, [0.5] * 3, [1.0] * 3]))
        cbn.beta.weight.copy_(torch.tensor([[0.0] * 3, [1.0] * 3, [-1.0] * 3, [3.0] * 3]))
    x = torch.randn(64, 3, 4, 4)
    out_a = cbn(x, torch.full((64, ), 1))
    out_b = cbn(x, torch.full((64, ), 2))
    # batch-normalised then scaled/shifted per class: class 1 -> mean 1, std 2
    assert out_a.mean().item() == pytest.approx(1.0, abs=1e-4)
    assert out_a.std().item() == pytest.approx(2.0, rel=1e-2)
    assert out_b.mean().item() == pytest.approx(-1.0, abs=1e-4)
    assert out_b.std().item() == pytest.approx(0.5, rel=1e-2)


def test_nearest_upsample_matches_torch_bitwise_in_outputs_and_gradients():
    # the generators use it in place of nn.Upsample for speed; recorded runs rely on it
    # giving the very same numbers, gradients included (the order the 2 x 2 sums are added)
    torch.manual_seed(0)
    x = torch.randn(8, 5, 6, 7, requires_grad=True)
    upstream = torch.randn(8, 5, 12, 14)
    ours = NearestUpsample2x()(x)
    ours.backward(upstream)
    ours_grad, x.grad = x.grad.clone(), None
    ref = torch.nn.Upsample(scale_factor=2)(x)
    ref.backward(upstream)
    assert ours.shape == (8, 5, 12, 14)
    assert torch.equal(ours, ref) and torch.equal(ours_grad, x.grad)
    # a channels-last input (what some conv kernels return) gives the same values
    assert torch.equal(NearestUpsample2x()(x.detach().to(memory_format=torch.channels_last)),
                       ref.detach())
    with pytest.raises(ValueError, match=r'\(N, C, H, W\)'):
        NearestUpsample2x()(torch.zeros(3, 4, 4))


def test_conditional_generator_depends_on_the_label():
    gen = MODELS.build(dict(type='DCGANGenerator', latent_dim=8, img_size=8, channels=1, ngf=4,
                            num_classes=3))
    # make the class-conditional affine parameters differ per class, as training does
    with torch.no_grad():
        for m in gen.modules():
            if isinstance(m, ConditionalBatchNorm2d):
                m.gamma.weight.uniform_(0.5, 2.0)
                m.beta.weight.normal_()
    z = torch.randn(16, 8)
    a = gen(z, torch.zeros(16, dtype=torch.long))
    b = gen(z, torch.full((16, ), 2))
    assert a.shape == (16, 1, 8, 8)
    assert (a.mean() - b.mean()).abs() > 1e-2 or (a.std() - b.std()).abs() > 1e-2
    with pytest.raises(ValueError, match='labels'):
        gen(z)
    uncond = MODELS.build(dict(type='DCGANGenerator', latent_dim=8, img_size=8, channels=1,
                               ngf=4))
    assert not uncond.conditional and uncond(z).shape == (16, 1, 8, 8)


def test_supcon_hand_computed_values():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    feats = torch.stack([torch.stack([e1, e1]), torch.stack([e2, e2])])  # (N=2, V=2, D=2)
    # labels differ: each anchor has 1 positive (its other view, dot 1) among 3 others
    expected = math.log(math.e + 2) - 1
    assert supervised_contrastive(feats, torch.tensor([0, 1]), 1.0).item() == pytest.approx(
        expected, rel=1e-6)
    # same label: all 3 others are positives, log-probs 1 - L, -L, -L with L = log(e + 2)
    expected_same = math.log(math.e + 2) - 1 / 3
    assert supervised_contrastive(feats, torch.tensor([0, 0]), 1.0).item() == pytest.approx(
        expected_same, rel=1e-6)


def test_supcon_loss_projections_and_errors():
    loss = SupConLoss(temperature=0.1, embed_dim=8, loss_weight=0.7)
    loss.build(42, 84)
    s, t = torch.randn(6, 42, requires_grad=True), torch.randn(6, 84)
    value = loss(s, t, torch.tensor([0, 0, 1, 1, 2, 2]))
    value.backward()
    assert value.item() > 0 and s.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='embed_dim'):
        SupConLoss().build(42, 84)


def test_ikd_mse_known_values():
    s, t = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 2.0]])
    assert mse_logit_distance(s, t).item() == pytest.approx(2.0)  # (4 + 0) / 2
    assert MSELogitLoss(5.0)(s, t).item() == pytest.approx(10.0)
    assert AdversarialDisagreementLoss('mse', loss_weight=5.0)(s, t).item() == pytest.approx(
        -10.0)


@needs_fmnist
@pytest.mark.parametrize('ablation', [
    {},
    {'model.synthesizer.contrastive': None},
    {'model.synthesizer.generator.num_classes': None, 'model.synthesizer.class_ce_weight': 0.0,
     'model.pseudo_label_loss': None},
])
def test_cpsc_config_and_ablations_train(ablation, teacher_ckpt, tmp_path):
    runner = run_datafree(CONFIG, str(tmp_path), teacher_ckpt, max_iters=2, **ablation)
    rows = [json.loads(line) for line in
            open(glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))[0])]
    train = [r for r in rows if 'synth.loss_adv' in r]
    assert train and 'student.loss_kd0' in train[0] and 'student.loss_kd1' in train[0]
    assert ('synth.loss_supcon' in train[0]) == ('model.synthesizer.contrastive' not in ablation)
    conditional = 'model.synthesizer.generator.num_classes' not in ablation
    assert ('student.loss_pseudo_ce' in train[0]) == conditional
    assert ('synth.loss_class_ce' in train[0]) == conditional
    assert runner.model.synthesizer.generator.conditional == conditional
    assert any('accuracy/top1' in r for r in rows)


@needs_fmnist
def test_prior_editor_config_trains_and_its_generator_sees_the_priors(teacher_ckpt, tmp_path):
    """The editor config builds a PriorResidualGenerator around a ConditionalImageEditor,
    trains two iterations through every CPSC-DFKD term, and the generator's weights move."""
    cfg_name = 'cpsc_dfkd/cpsc_dfkd_priors_editor_folded_steps10_lenet5bn_lenet5half_fmnist.py'
    from mmdfkd.apis import build_runner

    from .runner_utils import datafree_cfg
    runner = build_runner(datafree_cfg(cfg_name, str(tmp_path), teacher_ckpt, max_iters=2))
    generator = runner.model.synthesizer.generator
    assert type(generator).__name__ == 'PriorResidualGenerator'
    assert type(generator.inner).__name__ == 'ConditionalImageEditor'
    assert generator.conditional
    before = {k: v.clone() for k, v in generator.inner.state_dict().items()}
    runner.train()
    after = generator.inner.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if 'weight' in k)
    rows = [json.loads(line) for line in
            open(glob.glob(str(tmp_path / '*' / 'vis_data' / 'scalars.json'))[0])]
    train = [r for r in rows if 'synth.loss_adv' in r]
    assert train and {'synth.loss_supcon', 'synth.loss_class_ce', 'synth.loss_bn'} <= set(
        train[0])
    assert any('accuracy/top1' in r for r in rows)


def test_pseudo_label_loss_needs_labelled_samples(teacher_ckpt, tmp_path):
    from mmdfkd.apis import build_runner

    from .runner_utils import datafree_cfg
    cfg = datafree_cfg(CONFIG, str(tmp_path), teacher_ckpt, max_iters=1, **{
        'model.synthesizer.generator.num_classes': None,
        'model.synthesizer.class_ce_weight': 0.0})
    runner = build_runner(cfg)
    with pytest.raises(ValueError, match='pseudo_label_loss'):
        runner.train()


def test_replay_pool_keeps_generated_batches_and_mixes_them_into_student_batches(
        teacher_ckpt, tmp_path):
    """GeneratorSynthesizer(pool=...): each generator step pools the batch it was computed on
    with its labels (no extra teacher query); student batches are half fresh, half pooled."""
    from mmengine.optim import OptimWrapper

    from mmdfkd.models.algorithms import DataFreeDistiller

    from .conftest import LENET5BN, LENET5HALF
    distiller = DataFreeDistiller(
        teacher=LENET5BN, student=LENET5HALF, teacher_ckpt=teacher_ckpt,
        synthesizer=dict(type='GeneratorSynthesizer', batch_size=8, class_ce_weight=1.0,
                         generator=dict(type='DCGANGenerator', latent_dim=16, img_size=32,
                                        channels=1, ngf=4, num_classes=10),
                         pool=dict(type='SyntheticDataPool'), replay_ratio=0.5),
        distill_loss=dict(type='KLDivergenceLoss'))
    distiller.set_work_dir(str(tmp_path))
    synth = distiller.synthesizer
    images, labels = synth.sample_labelled(6)  # empty pool: all fresh
    assert images.shape == (6, 1, 32, 32) and labels.shape == (6, )
    optim = OptimWrapper(torch.optim.Adam(synth.parameters(), lr=1e-3))
    generated, generate = [], synth._generate

    def recording_generate(n):
        images, labels = generate(n)
        generated.append(labels)
        return images, labels

    synth._generate = recording_generate
    for _ in range(2):
        out = synth.synthesize(distiller, optim)
    assert len(synth.pool) == 16 and out['pool_size'] == 16
    assert int(distiller.teacher_queries) == 16  # pooled without re-asking the teacher
    stored = synth.pool.gather(torch.arange(16))
    assert stored['labels'].tolist() == torch.cat(generated).tolist()  # generated-for classes
    images, labels = synth.sample_labelled(10)
    pooled_images = stored['images'].flatten(1)
    from_pool = [bool((pooled_images == img.flatten()).all(1).any()) for img in images]
    assert from_pool == [False] * 5 + [True] * 5
    # the pool (and its index) is part of the synthesizer's state: checkpoints carry it
    assert 'synthesizer.pool._extra_state' in distiller.state_dict()
    with pytest.raises(ValueError, match='replay_ratio'):
        MODELS.build(dict(type='GeneratorSynthesizer', class_ce_weight=1.0, replay_ratio=1.5,
                          generator=dict(type='DCGANGenerator', latent_dim=16, img_size=32,
                                         channels=1, ngf=4, num_classes=10)))


def test_pixel_refinement_pools_refined_images_and_leaves_the_generator_alone(
        teacher_ckpt, tmp_path):
    """GeneratorSynthesizer(refine_steps=...): the pool gets the generator's batch after pixel
    steps on the same objective (teacher CE on the fixed labels drops, pixels stay in range),
    the generator is updated by its own step only, and every refinement query is counted."""
    from mmengine.optim import OptimWrapper

    from mmdfkd.models.algorithms import DataFreeDistiller

    from .conftest import LENET5BN, LENET5HALF
    distiller = DataFreeDistiller(
        teacher=LENET5BN, student=LENET5HALF, teacher_ckpt=teacher_ckpt,
        synthesizer=dict(type='GeneratorSynthesizer', batch_size=8, class_ce_weight=1.0,
                         bn=dict(type='BNStatisticsLoss'),
                         adversarial=dict(type='AdversarialDisagreementLoss'),
                         generator=dict(type='DCGANGenerator', latent_dim=16, img_size=32,
                                        channels=1, ngf=4, num_classes=10),
                         pool=dict(type='SyntheticDataPool'), replay_ratio=0.5,
                         refine_steps=5, refine_lr=0.1, pixel_range=(-0.81, 2.02)),
        distill_loss=dict(type='KLDivergenceLoss'))
    distiller.set_work_dir(str(tmp_path))
    synth = distiller.synthesizer
    generated = []
    generate = synth._generate

    def recording_generate(n):
        images, labels = generate(n)
        generated.append((images.detach().clone(), labels))
        return images, labels

    synth._generate = recording_generate
    student_calls = []
    student_forward = distiller.student_forward

    def counting_student_forward(images, **kwargs):
        student_calls.append(len(images))
        return student_forward(images, **kwargs)

    distiller.student_forward = counting_student_forward
    before = [p.detach().clone() for p in synth.generator.parameters()]
    sgd = OptimWrapper(torch.optim.SGD(synth.generator.parameters(), lr=0.0))
    out = synth.synthesize(distiller, sgd)  # lr 0: only the refinement could move anything
    assert all(torch.equal(a, b) for a, b in zip(before, synth.generator.parameters()))
    raw, labels = generated[0]
    stored = synth.pool.gather(torch.arange(8))
    assert stored['labels'].tolist() == labels.tolist()
    assert not torch.allclose(stored['images'], raw)
    # clamped to the pixel range (the pool stores float16: one rounding step of slack)
    assert stored['images'].min() >= -0.811 and stored['images'].max() <= 2.021
    teacher = distiller.teacher
    with torch.no_grad():
        ce_raw = torch.nn.functional.cross_entropy(teacher(raw, mode='tensor'), labels)
        ce_refined = torch.nn.functional.cross_entropy(
            teacher(stored['images'], mode='tensor'), labels)
    assert ce_refined < ce_raw
    assert 'refined_label_acc' in out
    # one generator step + 5 refinement steps + the final answer, 8 images each
    assert int(distiller.teacher_queries) == 8 * 7
    # the adversarial term is the generator's only (refine_adversarial=False): the student is
    # asked once, for the generator step; with refine_adversarial=True once per pixel step too
    assert student_calls == [8]
    synth.refine_adversarial = True
    synth.synthesize(distiller, sgd)
    assert student_calls == [8] * 7
    with pytest.raises(ValueError, match='refine_steps'):
        MODELS.build(dict(type='GeneratorSynthesizer', class_ce_weight=1.0, refine_steps=3,
                          generator=dict(type='DCGANGenerator', latent_dim=16, img_size=32,
                                         channels=1, ngf=4, num_classes=10)))
