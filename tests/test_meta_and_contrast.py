"""Fast-DFKD's meta update, BN momentum, CMI's contrastive term and the generative
inversion synthesizer on a real (small) teacher."""
import math

import pytest
import torch
from torch import nn

from mmdfkd.models.losses import BNStatisticsLoss, InstanceContrastiveLoss, info_nce
from mmdfkd.models.utils import MetaGradient
from mmdfkd.registry import MODELS

from .conftest import LENET5BN, LENET5HALF


def _adapt(meta: nn.Module, target: torch.Tensor, steps: int, meta_grad: MetaGradient
           ) -> nn.Module:
    """Inner loop: a copy of ``meta`` regresses onto ``target`` with a few SGD steps."""
    import copy
    fast = copy.deepcopy(meta)
    opt = torch.optim.SGD(fast.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        (fast.weight - target).pow(2).sum().backward()
        meta_grad.accumulate(fast)
        opt.step()
    return fast


@pytest.mark.parametrize('method', ['reptile', 'fomaml'])
def test_meta_update_moves_towards_adapted_weights(method):
    meta = nn.Linear(3, 1, bias=False)
    target = torch.tensor([[1.0, -2.0, 0.5]])
    before = (meta.weight - target).pow(2).sum().item()
    w0 = meta.weight.detach().clone()
    grad = MetaGradient(method)
    fast = _adapt(meta, target, steps=3, meta_grad=grad)
    grad.apply(meta, fast)
    torch.optim.SGD(meta.parameters(), lr=0.1).step()
    step = meta.weight.detach() - w0
    towards_fast = fast.weight.detach() - w0
    cos = nn.functional.cosine_similarity(step.flatten(), towards_fast.flatten(), dim=0)
    assert cos.item() > 0.99  # on this quadratic both point straight at the adapted weights
    assert (meta.weight - target).pow(2).sum().item() < before


@pytest.mark.parametrize('method', ['reptile', 'fomaml'])
def test_meta_learning_finds_the_initialisation_shared_by_tasks(method):
    """Tasks = regress onto centre + noise; a few-step learner's best start is the centre."""
    torch.manual_seed(0)
    centre = torch.tensor([[2.0, -1.0, 3.0]])
    meta = nn.Linear(3, 1, bias=False)
    opt = torch.optim.Adam(meta.parameters(), lr=0.05)
    start = (meta.weight - centre).norm().item()
    for _ in range(300):
        grad = MetaGradient(method)
        fast = _adapt(meta, centre + 0.3 * torch.randn(1, 3), steps=2, meta_grad=grad)
        opt.zero_grad()
        grad.apply(meta, fast)
        opt.step()
    assert (meta.weight - centre).norm().item() < 0.15 * start


def test_meta_gradient_rejects_unknown_method_and_missing_accumulate():
    with pytest.raises(ValueError, match='reptile'):
        MetaGradient('maml2')
    with pytest.raises(RuntimeError, match='accumulate'):
        MetaGradient('fomaml').apply(nn.Linear(1, 1), nn.Linear(1, 1))


def test_bn_momentum_blends_earlier_batches_statistics():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3)).eval()
    loss = BNStatisticsLoss(momentum=0.9).bind(net)
    a, b = torch.randn(16, 1, 6, 6), torch.randn(16, 1, 6, 6) * 2 + 1

    def stats(x):
        f = net[0](x)
        return f.mean((0, 2, 3)), f.var((0, 2, 3), unbiased=False)

    bn = net[1]
    with torch.no_grad():
        net(a)
        plain = loss().item()  # no EMA yet: plain statistics
        ma, va = stats(a)
        expected = (ma - bn.running_mean).norm() + (va - bn.running_var).norm()
        assert plain == pytest.approx(expected.item(), rel=1e-5)
        loss.update_momentum()
        assert torch.allclose(loss.ema_mean_0, ma) and torch.allclose(loss.ema_var_0, va)
        net(b)
        mb, vb = stats(b)
        mix_m, mix_v = 0.1 * mb + 0.9 * ma, 0.1 * vb + 0.9 * va
        expected = (mix_m - bn.running_mean).norm() + (mix_v - bn.running_var).norm()
        assert loss().item() == pytest.approx(expected.item(), rel=1e-5)
        loss.update_momentum()
        assert torch.allclose(loss.ema_mean_0, mix_m, atol=1e-6)
    with pytest.raises(ValueError, match='momentum'):
        BNStatisticsLoss(momentum=1.0)


def test_instance_features_are_per_image_channel_means():
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(),
                        nn.Linear(3 * 16, 4), nn.BatchNorm1d(4)).eval()
    loss = BNStatisticsLoss().bind(net)
    x = torch.randn(5, 1, 6, 6)
    net(x)
    feats = loss.instance_features()
    assert feats.shape == (5, 3 + 4) and loss.num_features == 7
    conv = net[0](x)
    assert torch.allclose(feats[:, :3], conv.mean((2, 3)), atol=1e-6)
    assert torch.allclose(feats[:, 3:], net[3](net[2](net[1](conv))), atol=1e-5)


def test_info_nce_known_value():
    e = torch.eye(2)
    # logits [[1, 0], [0, 1]] / T with T = 1: -log(e / (e + 1)) for each query
    assert info_nce(e, e, 1.0).tolist() == pytest.approx([math.log(1 + math.exp(-1))] * 2)
    # swapped keys: every query's positive is the worse match
    assert info_nce(e, e.flip(0), 0.5).mean().item() == pytest.approx(
        math.log(1 + math.exp(2)), rel=1e-6)


def test_instance_contrastive_loss_bank_and_gradients():
    loss = InstanceContrastiveLoss(embed_dim=8, temperature=0.1, bank_size=6, num_negatives=6)
    loss.build(5)
    local = torch.randn(4, 5, requires_grad=True)
    glob = torch.randn(4, 5, requires_grad=True)
    value = loss(local, glob)
    value.backward()
    assert local.grad.abs().sum() > 0
    assert glob.grad is None or glob.grad.abs().sum() == 0  # the global side is a target
    loss.memorize(local, glob)
    loss.memorize(local, glob)  # 8 rows into a ring of 6: wraps, keeps the newest
    assert int(loss.bank_count) == 6 and int(loss.bank_ptr) == 2
    assert torch.equal(loss.bank[:2], torch.cat([local, glob], 1)[2:4].detach())
    # head and bank are state: a checkpoint restores them
    fresh = InstanceContrastiveLoss(embed_dim=8, temperature=0.1, bank_size=6)
    fresh.build(5)
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.bank, loss.bank) and int(fresh.bank_ptr) == 2
    assert torch.equal(fresh.head[0].weight, loss.head[0].weight)
    with pytest.raises(RuntimeError, match='build'):
        InstanceContrastiveLoss()(local, glob)


class _Distiller(nn.Module):
    """The two calls a synthesizer makes on the distiller, on real LeNet models."""

    def __init__(self):
        super().__init__()
        self.teacher = MODELS.build(LENET5BN).eval()
        self.student = MODELS.build(LENET5HALF)
        with torch.no_grad():
            self.teacher.train()
            for _ in range(3):
                self.teacher(torch.randn(64, 1, 32, 32), mode='tensor')
            self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def teacher_forward(self, images, with_features=False):
        return self.teacher(images, mode='tensor'), None

    def student_forward(self, images):
        return self.student(images, mode='tensor')


def _synthesizer(tmp_path, **kwargs):
    cfg = dict(type='GenerativeInversionSynthesizer',
               generator=dict(type='DCGANGenerator', latent_dim=16, img_size=32, channels=1,
                              ngf=4),
               batch_size=8, iterations=3, lr_g=1e-2, lr_z=1e-2,
               adversarial=dict(type='AdversarialDisagreementLoss', divergence='kl',
                                agree_only=True))
    cfg.update(kwargs)
    synth = MODELS.build(cfg)
    distiller = _Distiller()
    synth.bind(distiller.teacher)
    synth.set_work_dir(str(tmp_path))
    return synth, distiller


def _wrapper(module):
    from mmengine.optim import OptimWrapper
    return OptimWrapper(torch.optim.Adam(module.parameters(), lr=1e-2))


@pytest.mark.parametrize('meta', ['reptile', 'fomaml'])
def test_fast_dfkd_synthesis_takes_a_meta_step(meta, tmp_path):
    synth, distiller = _synthesizer(tmp_path, meta=meta,
                                    bn=dict(type='BNStatisticsLoss', momentum=0.9))
    before = {k: v.clone() for k, v in synth.generator.state_dict().items()}
    out = synth.synthesize(distiller, _wrapper(synth))
    changed = [k for k, v in synth.generator.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any('weight' in k for k in changed), 'the meta generator must move'
    assert len(synth.pool) == 8 and int(synth.rounds) == 1
    assert bool(synth.bn_loss.ema_initialised)
    assert {'loss_bn', 'loss_ce', 'loss_adv', 'target_acc'} <= out.keys()
    assert synth.sample(5).shape == (5, 1, 32, 32)


def test_cmi_synthesis_resets_generator_and_trains_head(tmp_path):
    synth, distiller = _synthesizer(
        tmp_path, reset_generator=True,
        contrastive=dict(type='InstanceContrastiveLoss', embed_dim=8, bank_size=32),
        local_augment=[dict(type='RandomResizedCrop', size=32, scale=(0.25, 1.0))])
    gen_before = {k: v.clone() for k, v in synth.generator.state_dict().items()}
    head_before = {k: v.clone() for k, v in synth.contrastive.head.state_dict().items()}
    out = synth.synthesize(distiller, _wrapper(synth))
    assert 'loss_contrast' in out
    # the kept generator is only a template; every batch starts from fresh weights
    assert all(torch.equal(v, gen_before[k]) for k, v in synth.generator.state_dict().items())
    assert any(not torch.equal(v, head_before[k])
               for k, v in synth.contrastive.head.state_dict().items())
    assert int(synth.contrastive.bank_count) == 8
    synth.synthesize(distiller, _wrapper(synth))
    assert int(synth.contrastive.bank_count) == 16 and len(synth.pool) == 16


def test_generative_inversion_config_errors(tmp_path):
    with pytest.raises(ValueError, match='local_augment'):
        _synthesizer(tmp_path, contrastive=dict(type='InstanceContrastiveLoss'))
    with pytest.raises(ValueError, match='reset_generator'):
        _synthesizer(tmp_path, meta='reptile', reset_generator=True)
    with pytest.raises(ValueError, match='meta'):
        _synthesizer(tmp_path, meta='maml')
    synth, distiller = _synthesizer(tmp_path, meta='reptile')
    with pytest.raises(ValueError, match="optim_wrapper\\['synthesizer'\\]"):
        synth.synthesize(distiller, None)
