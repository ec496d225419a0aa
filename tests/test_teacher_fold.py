"""Student folded from the teacher's channels (``student_init_from_teacher='fold'``)."""
import pytest
import torch

from mmdfkd.models.utils import (fold_student_from_teacher, init_student_from_teacher,
                                 weighted_kmeans)
from mmdfkd.registry import MODELS

from .conftest import LENET5BN, LENET5HALF
from .test_teacher_slice import _lenets

WIDTHS = ((6, 3), (16, 8), (120, 60), (84, 42))  # LeNet-5-BN -> LeNet-5-half per layer


def _duplicate(core: torch.nn.Module, wide: torch.nn.Module, seed: int = 1) -> None:
    """Make ``wide`` compute exactly ``core``'s function with every channel of ``core`` held
    twice, at random positions, as two copies scaled by different positive factors, the next
    layer reading the two copies with weights that add back to ``core``'s. Folding must
    merge each pair back into one channel."""
    g = torch.Generator().manual_seed(seed)
    copies = []
    for teacher_n, core_n in WIDTHS:
        perm = torch.randperm(teacher_n, generator=g)
        source = torch.empty(teacher_n, dtype=torch.long)
        source[perm[:core_n]] = torch.arange(core_n)
        source[perm[core_n:]] = torch.arange(core_n)
        scale = 0.5 + torch.rand(teacher_n, generator=g)
        share = torch.empty(teacher_n)
        first = 0.2 + 0.6 * torch.rand(core_n, generator=g)
        share[perm[:core_n]], share[perm[core_n:]] = first, 1 - first
        copies.append((source, scale, share / scale))  # read-back weight of each copy
    (s1, l1, r1), (s2, l2, r2), (s3, l3, r3), (s4, l4, r4) = copies
    c, w = core.backbone, wide.backbone
    with torch.no_grad():
        w.conv1[0].weight.copy_(c.conv1[0].weight[s1])
        w.conv2[0].weight.copy_(c.conv2[0].weight[s2][:, s1] * r1.view(1, -1, 1, 1))
        for wb, cb, source, scale in ((w.conv1[1], c.conv1[1], s1, l1),
                                      (w.conv2[1], c.conv2[1], s2, l2)):
            wb.weight.copy_(cb.weight[source] * scale)
            wb.bias.copy_(cb.bias[source] * scale)
            wb.running_mean.copy_(cb.running_mean[source])
            wb.running_var.copy_(cb.running_var[source])
        fc1 = c.fc[1].weight.view(60, 8, 25)[s3][:, s2] * r2.view(1, -1, 1)
        w.fc[1].weight.copy_((fc1 * l3.view(-1, 1, 1)).reshape(120, 400))
        w.fc[1].bias.copy_(c.fc[1].bias[s3] * l3)
        w.fc[3].weight.copy_(c.fc[3].weight[s4][:, s3] * r3 * l4.view(-1, 1))
        w.fc[3].bias.copy_(c.fc[3].bias[s4] * l4)
        wide.head.fc.weight.copy_(core.head.fc.weight[:, s4] * r4)
        wide.head.fc.bias.copy_(core.head.fc.bias)


def test_fold_merges_duplicated_channels_back_into_the_hidden_network():
    """Each channel of a half-width network stored twice in the teacher (different scales,
    split read-back): folding recovers exactly that network's function. Checks the BN fold,
    the per-channel norms moved into the next layer (also across the conv -> fc flatten),
    the clustering and the head; slicing cannot do this (it keeps one copy of some channels
    and both copies of others)."""
    core, teacher, student = _lenets()
    _duplicate(core, teacher)
    x = torch.randn(16, 1, 32, 32)
    with torch.no_grad():
        expected = core(x, mode='tensor')
        assert torch.allclose(teacher(x, mode='tensor'), expected, atol=1e-4)
        init_student_from_teacher(student, teacher, 'fold')
        assert torch.allclose(student(x, mode='tensor'), expected, atol=1e-4)
        sliced = MODELS.build(LENET5HALF).eval()
        init_student_from_teacher(sliced, teacher, 'magnitude')
        assert not torch.allclose(sliced(x, mode='tensor'), expected, atol=1e-2)


def test_folded_bn_statistics_follow_the_teachers():
    """The student's BN running statistics are what the teacher's imply for the merged
    channel: in train mode on a batch whose statistics equal the teacher's running ones, the
    folded conv1 block computes what the teacher's does (here every pair of copies has the
    same statistics, so the implied ones are exact)."""
    core, teacher, student = _lenets()
    _duplicate(core, teacher)
    fold_student_from_teacher(student, teacher)
    t_bn, s_bn = teacher.backbone.conv1[1], student.backbone.conv1[1]
    x = torch.randn(64, 1, 32, 32)
    with torch.no_grad():
        t_pre = teacher.backbone.conv1[0](x)
        s_pre = student.backbone.conv1[0](x)
        # The student's statistics, mapped through the same affine map the fold applied,
        # must match the pre-BN mean of the teacher's copies on the same inputs.
        t_norm = (t_pre - t_bn.running_mean.view(1, -1, 1, 1)) / (
            t_bn.running_var + t_bn.eps).sqrt().view(1, -1, 1, 1)
        s_norm = (s_pre - s_bn.running_mean.view(1, -1, 1, 1)) / (
            s_bn.running_var + s_bn.eps).sqrt().view(1, -1, 1, 1)
    # every student channel's normalised pre-activation equals that of its teacher copies
    matched = [any(torch.allclose(s_norm[:, j], t_norm[:, i], atol=1e-4) for i in range(6))
               for j in range(3)]
    assert all(matched)


def test_weighted_kmeans_finds_blobs_and_weighted_centroids():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = torch.arange(3).repeat_interleave(5)
    points = centres[labels] + 0.1 * torch.randn(15, 2, generator=g)
    weights = torch.ones(15)
    weights[0] = 100.0  # pulls blob 0's centroid onto point 0
    assign, centroids = weighted_kmeans(points, weights, 3)
    for blob in range(3):  # one cluster per blob
        assert assign[labels == blob].unique().numel() == 1
    assert assign.unique().numel() == 3
    c0 = centroids[assign[0]]
    expected = (weights[:5, None] * points[:5]).sum(0) / weights[:5].sum()
    assert torch.allclose(c0, expected, atol=1e-5)
    assert torch.linalg.vector_norm(c0 - points[0]) < 0.02
    again, _ = weighted_kmeans(points, weights, 3)
    assert torch.equal(assign, again)
    with pytest.raises(ValueError, match='1 <= k <= 15'):
        weighted_kmeans(points, weights, 16)


def test_fold_errors_name_the_key():
    _, teacher, _ = _lenets()
    wider = MODELS.build(dict(LENET5BN, backbone=dict(LENET5BN['backbone'], width=2.0),
                              head=dict(LENET5BN['head'], in_channels=168)))
    with pytest.raises(ValueError, match='wider in the student'):
        init_student_from_teacher(wider, teacher, 'fold')
    no_bn = MODELS.build(dict(LENET5HALF, backbone=dict(LENET5HALF['backbone'],
                                                        with_bn=False)))
    with pytest.raises(ValueError, match="student_init_from_teacher='fold'"):
        init_student_from_teacher(no_bn, teacher, 'fold')

    def depthwise(width: int) -> torch.nn.Module:  # a MobileNet-like chain, as TorchClassifier
        net = torch.nn.Sequential(
            torch.nn.Conv2d(1, width, 3), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
            torch.nn.Conv2d(width, width, 3, groups=width), torch.nn.BatchNorm2d(width),
            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
            torch.nn.Linear(width, 10))
        return MODELS.build(dict(type='TorchClassifier', model=net))
    # it crashed with a reshape error deep in the fold
    with pytest.raises(ValueError, match=r"'model.3' is a grouped convolution \(groups=8\), "
                                         r".*student_init_from_teacher='first'"):
        init_student_from_teacher(depthwise(4), depthwise(8), 'fold')
    init_student_from_teacher(depthwise(4), depthwise(8), 'first')  # what the message offers


def test_distiller_passes_the_fold_seed(teacher_ckpt):
    """``model.student_init_seed`` reaches the fold's k-means: the distiller's student equals
    a direct fold with that seed, another seed merges different channels, and a bad value
    names the key."""
    from mmdfkd.models.algorithms import DataFreeDistiller
    synth = dict(type='InversionSynthesizer', image_shape=(1, 32, 32), num_classes=10,
                 batch_size=8, iterations=1)

    def folded(seed: int) -> torch.nn.Module:
        distiller = DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF, synthesizer=synth,
                                      teacher_ckpt=teacher_ckpt,
                                      distill_loss=dict(type='KLDivergenceLoss'),
                                      student_init_from_teacher='fold', student_init_seed=seed)
        distiller.init_weights()
        return distiller

    first, second = folded(0), folded(3)
    direct = fold_student_from_teacher(MODELS.build(LENET5HALF), first.teacher, seed=3)
    for key, value in direct.state_dict().items():
        assert torch.equal(second.student.state_dict()[key], value), key
    assert any(not torch.equal(a, b) for a, b in zip(first.student.state_dict().values(),
                                                      second.student.state_dict().values()))
    with pytest.raises(ValueError, match='model.student_init_seed'):
        folded(-1)
