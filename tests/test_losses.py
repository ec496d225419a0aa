import math

import pytest
import torch
import torch.nn.functional as F

from mmdfkd.models.losses import (ActivationLoss, AdversarialDisagreementLoss,
                                  AttentionTransferLoss, BNStatisticsLoss, DecoupledKDLoss,
                                  InformationEntropyLoss, KLDivergenceLoss, L1LogitLoss,
                                  OneHotLoss, StandardizedKLLoss, decoupled_kd, kl_divergence)


def test_kl_divergence_matches_hand_computed_value():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])  # teacher probs (0.75, 0.25)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert KLDivergenceLoss()(s, t).item() == pytest.approx(expected, rel=1e-5)
    # temperature: logits divided by tau, loss scaled by tau^2
    t2 = torch.tensor([[2 * math.log(3.0), 0.0]])
    assert KLDivergenceLoss(tau=2.0)(s, t2).item() == pytest.approx(4 * expected, rel=1e-5)
    assert KLDivergenceLoss()(t, t).item() == pytest.approx(0.0, abs=1e-7)


def test_decoupled_kd_known_value_and_kd_decomposition():
    # 3 classes, teacher top-1 = class 0 with probs (0.5, 0.25, 0.25); student uniform.
    s = torch.zeros(1, 3)
    t = torch.tensor([[math.log(2.0), 0.0, 0.0]])
    # TCKD: binary (0.5, 0.5) vs (1/3, 2/3); NCKD: (0.5, 0.5) vs (0.5, 0.5) = 0.
    tckd = 0.5 * math.log(0.5 / (1 / 3)) + 0.5 * math.log(0.5 / (2 / 3))
    loss = DecoupledKDLoss(tau=1.0, alpha=1.0, beta=8.0)(s, t)
    assert loss.item() == pytest.approx(tckd, rel=1e-5)
    # non-target term: teacher (0.5, 0.3, 0.2) -> non-target distribution (0.6, 0.4)
    t2 = torch.tensor([[0.5, 0.3, 0.2]]).log()
    nckd = 0.6 * math.log(0.6 / 0.5) + 0.4 * math.log(0.4 / 0.5)
    assert DecoupledKDLoss(tau=1.0, alpha=0.0, beta=1.0)(s, t2).item() == pytest.approx(
        nckd, rel=1e-5)
    assert DecoupledKDLoss(tau=1.0, alpha=0.0, beta=2.0, loss_weight=3.0)(s, t2).item() == \
        pytest.approx(6 * nckd, rel=1e-5)
    # The paper's identity: KD = TCKD + (1 - p_t(target)) * NCKD, at any temperature.
    torch.manual_seed(0)
    s, t = torch.randn(6, 10), 3 * torch.randn(6, 10)
    tau = 2.0
    p_target = F.softmax(t / tau, dim=1).max(dim=1).values
    combined = (decoupled_kd(s, t, tau, alpha=1.0, beta=0.0)
                + (1 - p_target) * decoupled_kd(s, t, tau, alpha=0.0, beta=1.0))
    assert torch.allclose(combined, kl_divergence(s, t, tau), atol=1e-5)
    assert DecoupledKDLoss()(t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_standardized_kl_ignores_logit_scale_and_shift():
    torch.manual_seed(0)
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    loss = StandardizedKLLoss(tau=2.0)
    # An affine map of the student's logits (positive scale) leaves the loss unchanged...
    assert loss(5 * s + 3, t).item() == pytest.approx(loss(s, t).item(), rel=1e-4)
    # ...so a student matching the teacher up to scale and shift is already at zero.
    assert loss(0.1 * t - 2, t).item() == pytest.approx(0.0, abs=1e-6)
    assert loss(s, t).item() > 0
    z = (t - t.mean(1, keepdim=True)) / t.std(1, keepdim=True)
    assert loss(s, t).item() == pytest.approx(
        KLDivergenceLoss(tau=2.0)((s - s.mean(1, keepdim=True)) / s.std(1, keepdim=True),
                                  z).item(), rel=1e-4)


def test_l1_and_adversarial_losses():
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    # per-sample mean |s - t|: (1 + 2)/2 = 1.5 and (0 + 1)/2 = 0.5 -> mean 1.0
    assert L1LogitLoss()(s, t).item() == pytest.approx(1.0)
    assert AdversarialDisagreementLoss('l1', loss_weight=2.0)(s, t).item() == pytest.approx(-2.0)
    # agree_only: sample 0 disagrees (argmax 1 vs 0) so only sample 1 (argmax 0 vs 1)... also
    # disagrees -> zero; make sample 1 agree:
    t_agree = torch.tensor([[2.0, 0.0], [1.0, 0.0]])
    s_agree = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    adv = AdversarialDisagreementLoss('l1', agree_only=True)(s_agree, t_agree)
    assert adv.item() == pytest.approx(-(0 + 1.0) / 2)  # only sample 1: mean(|2|, |0|) = 1
    kl = AdversarialDisagreementLoss('kl')(s, t)
    assert kl.item() == pytest.approx(-KLDivergenceLoss()(s, t).item())
    with pytest.raises(ValueError, match='divergence'):
        AdversarialDisagreementLoss('l2')


def test_dafl_losses_known_values():
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]])
    # one-hot: CE against own argmax
    expected_ce = F.cross_entropy(logits, torch.tensor([0, 1, 2])).item()
    assert OneHotLoss()(logits).item() == pytest.approx(expected_ce)
    # balanced batch -> mean prob uniform -> negative entropy = -log(3)
    assert InformationEntropyLoss()(logits).item() == pytest.approx(-math.log(3), rel=1e-5)
    # collapsed batch -> close to 0 (no entropy)
    collapsed = torch.tensor([[50.0, 0.0, 0.0]] * 3)
    assert InformationEntropyLoss()(collapsed).item() == pytest.approx(0.0, abs=1e-6)
    feats = torch.tensor([[1.0, -3.0], [2.0, 0.0]])
    assert ActivationLoss(loss_weight=0.5)(feats).item() == pytest.approx(-0.5 * 6.0 / 4)


def test_attention_transfer_known_value():
    fs = torch.zeros(1, 2, 1, 2)
    fs[0, :, 0, 0] = 1.0  # attention all on position 0 -> normalised (1, 0)
    ft = torch.zeros(1, 3, 1, 2)
    ft[0, :, 0, 1] = 2.0  # attention all on position 1 -> (0, 1)
    # mean over 2 positions of squared difference: (1 + 1) / 2 = 1
    assert AttentionTransferLoss()([fs], [ft]).item() == pytest.approx(1.0)
    assert AttentionTransferLoss(250.0)([fs], [fs * 3]).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match='size'):
        AttentionTransferLoss()([fs], [torch.ones(1, 2, 2, 2)])
    # A backbone's tuple of stages counts as its deepest stage.
    assert AttentionTransferLoss()([(torch.ones(1, 2, 4, 4), fs)], [ft]).item() == \
        pytest.approx(1.0)
    with pytest.raises(ValueError, match=r'teacher module 0 gives shape \(1, 5, 8\).*tokens'):
        AttentionTransferLoss()([fs], [torch.ones(1, 5, 8)])
    with pytest.raises(ValueError, match='at least one stage'):
        AttentionTransferLoss()([], [])


def test_bn_statistics_loss_zero_on_running_stats_positive_otherwise():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4))
    bn = net[1]
    bn.eval()
    loss = BNStatisticsLoss().bind(net)
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        feats = net[0](x)
        bn.running_mean.copy_(feats.mean((0, 2, 3)))
        bn.running_var.copy_(feats.var((0, 2, 3), unbiased=False))
    net(x)
    assert loss().item() == pytest.approx(0.0, abs=1e-5)
    net(x * 3 + 1)
    assert loss().item() > 0.5
    # the loss is differentiable w.r.t. the input
    x2 = (x * 3 + 1).requires_grad_()
    net(x2)
    loss().backward()
    assert x2.grad is not None and x2.grad.abs().sum() > 0
    with pytest.raises(ValueError, match='BatchNorm'):
        BNStatisticsLoss().bind(torch.nn.Linear(2, 2))


def test_bn_statistics_first_layer_weight_scales_only_the_first_layer_term():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4),
                              torch.nn.Conv2d(4, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    x = torch.randn(16, 1, 8, 8)
    plain = BNStatisticsLoss().bind(net)
    net(x)
    total = plain().item()
    with torch.no_grad():
        first = net[0](x)
        first_term = (torch.norm(first.mean((0, 2, 3)) - net[1].running_mean)
                      + torch.norm(first.var((0, 2, 3), unbiased=False) - net[1].running_var))
    weighted = BNStatisticsLoss(loss_weight=2.0, first_layer_weight=10.0).bind(net)
    net(x)
    # 2 * (10 * first + rest) with rest = total - first
    assert weighted().item() == pytest.approx(2.0 * (total + 9.0 * first_term.item()), rel=1e-5)
    with pytest.raises(ValueError, match='first_layer_weight'):
        BNStatisticsLoss(first_layer_weight=-1.0)


def test_bn_statistics_gaussian_kl_equals_a_hand_computed_value():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1, bias=False), torch.nn.BatchNorm2d(2))
    net.eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, 2.0]).view(2, 1, 1, 1))
        net[1].running_mean.copy_(torch.tensor([0.0, 1.0]))
        net[1].running_var.copy_(torch.tensor([1.0, 4.0]))
    net[1].eps = 1e-12  # (torch 2.11 refuses eps=0)
    # channel 0 sees x, channel 1 sees 2x; x has mean 1 and variance 1
    x = torch.tensor([0.0, 2.0]).view(2, 1, 1, 1)
    loss = BNStatisticsLoss(distance='gaussian_kl', loss_weight=2.0).bind(net)
    net(x)
    # KL(N(1, 1) || N(0, 1)) = 0.5; KL(N(2, 4) || N(1, 4)) = 0.5 * (1 / 4) = 0.125
    assert loss().item() == pytest.approx(2.0 * (0.5 + 0.125))
    # zero on the running statistics themselves, like the L2 distance
    with torch.no_grad():
        net[1].running_mean.copy_(torch.tensor([1.0, 2.0]))
        net[1].running_var.copy_(torch.tensor([1.0, 4.0]))
    net(x)
    assert loss().item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="distance must be one of .*'l1'"):
        BNStatisticsLoss(distance='l1')


@pytest.mark.parametrize('loss', [KLDivergenceLoss, DecoupledKDLoss, StandardizedKLLoss,
                                  AdversarialDisagreementLoss])
def test_a_temperature_that_is_not_positive_is_refused(loss):
    """tau=0 would divide the logits by zero and train on NaN; refuse it at build time."""
    for tau in (0, -1.0, None):
        with pytest.raises(ValueError, match=f'{loss.__name__} tau must be a temperature > 0'):
            loss(tau=tau)
    kd = loss(tau=2)
    assert kd.tau == 2.0 and isinstance(kd.tau, float)
