import pytest
import torch

from mmdfkd.registry import MODELS

from .conftest import LENET5BN, LENET5HALF


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_lenet_full_and_half_shapes():
    x = torch.randn(4, 1, 32, 32)
    full, half = MODELS.build(LENET5BN), MODELS.build(LENET5HALF)
    assert full(x, mode='tensor').shape == (4, 10)
    assert half(x, mode='tensor').shape == (4, 10)
    assert full.backbone.conv1[0].out_channels == 6 and half.backbone.conv1[0].out_channels == 3
    assert _params(half) < _params(full) / 3
    plain = MODELS.build(dict(type='LeNet', with_bn=False))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    multi = MODELS.build(dict(type='LeNet', out_indices=(0, 1, 2)))
    shapes = [o.shape for o in multi(x)]
    assert shapes == [(4, 6, 14, 14), (4, 16, 5, 5), (4, 84)]
    with pytest.raises(ValueError, match='CenterPad'):
        full(torch.randn(1, 1, 28, 28), mode='tensor')


@pytest.mark.parametrize('depth,width,params_m', [(40, 2, 2.24), (16, 2, 0.69), (16, 1, 0.17),
                                                  (40, 1, 0.56)])
def test_wide_resnet_sizes_match_the_paper(depth, width, params_m):
    backbone = MODELS.build(dict(type='WideResNet', depth=depth, widen_factor=width))
    out = backbone(torch.randn(2, 3, 32, 32))[0]
    assert out.shape == (2, 64 * width, 8, 8)
    assert _params(backbone) / 1e6 == pytest.approx(params_m, rel=0.06)


def test_mmpretrain_backbone_reachable_from_mmdfkd_scope():
    resnet = MODELS.build(dict(type='ResNet_CIFAR', depth=18))
    assert type(resnet).__module__.startswith('mmpretrain')
