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
    """Named by the key it was given (it said `student_augment` for every pipeline); a v2
    function such as `functional` or `to_image` is not a transform either."""
    with pytest.raises(ValueError, match=r"model.synthesizer.augment\[1\].type: unknown "
                                         r"torchvision.transforms.v2 transform 'NotATransform'"):
        BatchAugment([dict(type='RandomHorizontalFlip'), dict(type='NotATransform')],
                     key='model.synthesizer.augment')
    with pytest.raises(ValueError, match="'to_image'"):
        BatchAugment([dict(type='to_image')])


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


def test_a_pipeline_sized_for_another_resolution_is_refused_with_its_keys():
    """The CIFAR recipes crop to 32 px. With image_shape raised for a 224 px model, the crops
    used to run silently: the teacher labelled, and the student learnt, 32 px windows."""
    flip_crop = BatchAugment([dict(type='RandomHorizontalFlip'),
                              dict(type='RandomCrop', size=32, padding=4)], groups=16)
    flip_crop.check_keeps_shape((3, 32, 32), 'model.student_augment')  # the recipe's own size
    with pytest.raises(ValueError, match=r'model.student_augment turns the images of '
                                         r'\(3, 64, 64\) \(model.synthesizer.image_shape\) '
                                         r'into \(3, 32, 32\).*Set '
                                         r'model.student_augment.1.size to 64, or '
                                         r'model.synthesizer.image_shape'):
        flip_crop.check_keeps_shape((3, 64, 64), 'model.student_augment')
    with pytest.raises(ValueError, match=r'model.augment fails on images of \(3, 16, 16\) '
                                         r'\(K\): ".*crop size.*Set model.augment.1.size to 16'):
        flip_crop.check_keeps_shape((3, 16, 16), 'model.augment', 'K')
    BatchAugment([dict(type='RandomHorizontalFlip')]).check_keeps_shape((1, 28, 20), 'k')


def test_recipes_raised_to_another_image_size_need_their_crops_resized(tmp_path):
    from mmengine.config import Config

    from mmdfkd.apis import build_runner, load_config
    from mmdfkd.registry import MODELS

    from .conftest import config_path
    from .runner_utils import one_iteration_options
    config = config_path('deepinversion', 'deepinversion_resnet34_resnet18_cifar10.py')
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': MODELS.build(Config.fromfile(config).model.teacher).state_dict()},
               ckpt)
    opts = one_iteration_options(config, ckpt)
    opts['model.synthesizer.image_shape'] = (3, 48, 48)

    def load(name: str) -> Config:
        # one experiment name per runner: several built in one second would share mmengine's
        # timestamped default name (and its logger/visualizer instances)
        cfg = load_config(config, cfg_options=opts, work_dir=str(tmp_path / name))
        cfg.experiment_name = f'test_raised_image_size_{name}'
        return cfg
    with pytest.raises(ValueError, match=r'model.synthesizer.augment turns the images of '
                                         r'\(3, 48, 48\).*model.synthesizer.augment.0.size'):
        build_runner(load('a'))
    opts['model.synthesizer.augment.0.size'] = 48
    with pytest.raises(ValueError, match=r'model.student_augment turns .*'
                                         r'model.student_augment.1.size to 48'):
        build_runner(load('b'))
    opts['model.student_augment.1.size'] = 48
    runner = build_runner(load('c'))
    runner.train()
    images = runner.model.synthesizer.pool.sample(2)[0]
    assert runner.iter == 1 and images.shape[1:] == (3, 48, 48)


def test_random_intensity_scale_is_brightness_per_image_in_normalised_space():
    """Each image of a normalised batch becomes torchvision's brightness change of its pixels
    by its own factor in the range (black stays black, bright pixels clamp at 255); inside
    BatchAugment's groups the factor is still per image. A misspelt name lists it."""
    from torchvision.transforms.v2 import functional as TF

    from mmdfkd.models.utils import RandomIntensityScale
    mean, std = 72.94, 90.0
    pixels = torch.rand(8, 1, 16, 16) * 255
    pixels[:, :, :4] = 0  # a black band
    images = (pixels - mean) / std
    scale = RandomIntensityScale((0.5, 1.5), mean=[mean], std=[std])
    out = scale(images) * std + mean
    factors = []
    for before, after in zip(pixels, out):
        moderate = (before > 10) & (before < 150)  # never clamped for factors <= 1.5
        factor = float((after[moderate] / before[moderate]).mean())
        assert 0.5 <= factor <= 1.5
        expected = TF.adjust_brightness(before / 255, factor) * 255
        torch.testing.assert_close(after, expected, atol=1e-3, rtol=1e-4)
        assert after[:, :4].abs().max() < 1e-3
        factors.append(factor)
    assert len({round(f, 4) for f in factors}) == 8

    grouped = BatchAugment([dict(type='RandomIntensityScale', scale=(0.5, 1.5), mean=[mean],
                                 std=[std])], groups=2)(images) * std + mean
    ratios = {round(float((a[(b > 10) & (b < 150)] / b[(b > 10) & (b < 150)]).mean()), 4)
              for a, b in zip(grouped, pixels)}
    assert len(ratios) == 8
    with pytest.raises(ValueError, match='RandomIntensityScale'):
        BatchAugment([dict(type='RandomIntensityScal')])


def test_random_patch_erasing_blackens_one_rectangle_per_image():
    """Every image loses its own rectangle, set to black in the normalised space, of an area
    within ``scale``; ``p`` decides how many do, also inside BatchAugment's groups."""
    from mmdfkd.models.utils import RandomPatchErasing
    mean, std = 72.94, 90.0
    images = (torch.rand(64, 1, 32, 32) * 200 + 40 - mean) / std  # no pixel is black
    erase = RandomPatchErasing(p=1.0, scale=(0.02, 0.2), mean=[mean], std=[std])
    out = erase(images)
    boxes = set()
    for before, after in zip(images, out):
        erased = (after != before)[0]
        torch.testing.assert_close(after[0][erased] * std + mean,
                                   torch.zeros(int(erased.sum())), atol=1e-4, rtol=0)
        rows, cols = erased.any(1).nonzero(), erased.any(0).nonzero()
        top, left = int(rows.min()), int(cols.min())
        height, width = int(rows.max()) - top + 1, int(cols.max()) - left + 1
        assert int(erased.sum()) == height * width  # a filled rectangle
        assert 0.02 * 1024 * 0.5 <= height * width <= 0.2 * 1024 * 1.5  # rounding of sides
        boxes.add((top, left, height, width))
    assert len(boxes) > 50
    assert erase(images[0]).shape == images[0].shape

    grouped = BatchAugment([dict(type='RandomPatchErasing', p=0.5, mean=[mean], std=[std])],
                           groups=4)(images)
    kept = [bool((a == b).all()) for a, b in zip(grouped, images)]
    assert 16 < sum(kept) < 48
    assert torch.equal(RandomPatchErasing(p=0.0)(images), images)
    with pytest.raises(ValueError, match='RandomPatchErasing.scale'):
        RandomPatchErasing(scale=(0.3, 0.1))
