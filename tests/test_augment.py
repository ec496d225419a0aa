import pytest
import torch

from mmdfkd.models.utils import BatchAugment


def test_batch_augment_draws_parameters_per_image():
    torch.manual_seed(0)
    aug = BatchAugment([dict(type='RandomHorizontalFlip', p=0.5)])
    img = torch.tensor([[[0.0, 3.0]]])  # one asymmetric 1x1x2 image
    out = aug(img.expand(64, 1, 1, 2).clone())
    flipped = (out[:, 0, 0, 0] == 3).sum().item()
    assert out.shape == (64, 1, 1, 2)
    # a batch-level call would flip all or none; per-image gives a mix
    assert 0 < flipped < 64
    assert ((out[:, 0, 0, 0] == 0) | (out[:, 0, 0, 0] == 3)).all()


def test_batch_augment_rejects_unknown_transform():
    with pytest.raises(ValueError, match='NotATransform'):
        BatchAugment([dict(type='NotATransform')])


def test_batch_augment_groups_share_one_draw_each():
    """groups=G: G torchvision calls per batch, images of a group transformed alike."""
    torch.manual_seed(0)
    aug = BatchAugment([dict(type='RandomHorizontalFlip', p=0.5)], groups=8)
    img = torch.tensor([[[0.0, 3.0]]])
    flipped_groups = set()
    for _ in range(5):
        out = aug(img.expand(64, 1, 1, 2).clone())
        first = out[:, 0, 0, 0].view(8, 8)
        assert (first == first[:, :1]).all()  # one draw per group of 8 consecutive images
        flipped_groups.update((first[:, 0] == 3).tolist())
        assert ((out == img) | (out == img.flip(-1))).all()
    assert flipped_groups == {True, False}  # groups draw independently
    with pytest.raises(ValueError, match='groups'):
        BatchAugment([dict(type='RandomHorizontalFlip')], groups=0)
