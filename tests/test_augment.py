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
