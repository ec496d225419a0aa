"""`frozen_parameters` / `evaluation_mode`: the student must pass gradients to the
synthesizer's images without collecting any itself, and leave its BN statistics alone."""
import pytest
import torch
from torch import nn

from mmdfkd.models.utils import evaluation_mode, frozen_parameters


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                         nn.Linear(64, 3))


def test_frozen_parameters_pass_gradients_through_but_keep_none():
    net = _net()
    net[0].bias.requires_grad_(False)  # a parameter frozen by the user stays frozen
    images = torch.randn(2, 1, 6, 6, requires_grad=True)
    with frozen_parameters(net):
        net(images).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    assert not net[0].bias.requires_grad
    assert all(p.requires_grad for n, p in net.named_parameters() if n != '0.bias')


def test_frozen_parameters_restores_requires_grad_after_an_error():
    net = _net()
    with pytest.raises(RuntimeError, match='boom'):
        with frozen_parameters(net):
            raise RuntimeError('boom')
    assert all(p.requires_grad for p in net.parameters())


def test_evaluation_mode_uses_and_keeps_running_statistics_and_restores_the_mode():
    net = _net().train()
    net(torch.randn(4, 1, 6, 6))
    bn = net[1]
    mean, var = bn.running_mean.clone(), bn.running_var.clone()
    batch = torch.randn(4, 1, 6, 6) * 3 + 2
    with evaluation_mode(net):
        assert not net.training and not bn.training
        out = net(batch)
    assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
    assert net.training and bn.training
    net.eval()
    assert torch.allclose(net(batch), out)  # the same computation as plain eval mode
    with evaluation_mode(net):
        pass
    assert not net.training  # a module that was in eval mode stays there
