import pytest
import torch

from mmdfkd.models.utils import BatchAugment, PartialMixup


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


def test_partial_mixup_blends_the_first_part_only():
    """Image i is constant i: a blend of i and j is constant, between i and j, and not i
    itself for most draws; the second half of the batch is untouched."""
    torch.manual_seed(0)
    batch = torch.arange(16.0).view(16, 1, 1, 1).expand(16, 1, 4, 4).clone()
    out = PartialMixup(ratio=0.5, alpha=1.0)(batch)
    assert out.shape == batch.shape
    assert torch.equal(out[8:], batch[8:])
    flat = out[:8].flatten(1)
    assert torch.allclose(flat, flat[:, :1].expand_as(flat))  # blends of constants
    assert (flat[:, 0] >= 0).all() and (flat[:, 0] <= 15).all()
    assert (flat[:, 0] != batch[:8, 0, 0, 0]).sum() >= 6
    with pytest.raises(ValueError, match='student_mixup'):
        PartialMixup(ratio=0.0)
    with pytest.raises(ValueError, match='alpha'):
        PartialMixup(alpha=0.0)


def test_student_mixup_reaches_the_teacher_and_refuses_pseudo_labels(teacher_ckpt):
    """The teacher labels the blended batch (what the student learns), not the pool images;
    a config that also asks for CE on sampled labels is refused."""
    from mmdfkd.models.algorithms import DataFreeDistiller

    from .conftest import LENET5BN, LENET5HALF
    synth = dict(type='InversionSynthesizer', image_shape=(1, 32, 32), num_classes=10,
                 batch_size=8, iterations=1)
    distiller = DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF, synthesizer=synth,
                                  teacher_ckpt=teacher_ckpt,
                                  distill_loss=dict(type='KLDivergenceLoss'),
                                  student_mixup=dict(ratio=0.5))
    pooled = torch.randn(8, 1, 32, 32)
    distiller.synthesizer.sample = lambda n: pooled[:n]
    seen = []
    real_forward = distiller.teacher_forward
    distiller.teacher_forward = lambda images: seen.append(images) or real_forward(images)
    optim = torch.optim.SGD(distiller.student.parameters(), lr=0.0)
    from mmengine.optim import OptimWrapper
    distiller.student_step(OptimWrapper(optim))
    assert torch.equal(seen[0][4:], pooled[4:])
    assert not torch.allclose(seen[0][:4], pooled[:4])
    with pytest.raises(ValueError, match='pseudo_label_loss'):
        DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF, synthesizer=synth,
                          teacher_ckpt=teacher_ckpt, distill_loss=dict(type='KLDivergenceLoss'),
                          pseudo_label_loss=dict(type='CrossEntropyLoss'),
                          student_mixup=dict(ratio=0.5))
