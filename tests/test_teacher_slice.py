"""Student initialised from a channel slice of the teacher (``student_init_from_teacher``)."""
import pytest
import torch

from mmdfkd.models.teachers import TeacherAccessError
from mmdfkd.models.utils import init_student_from_teacher
from mmdfkd.registry import MODELS

from .conftest import LENET5BN, LENET5HALF


def _embed(core: torch.nn.Module, wide: torch.nn.Module, first: bool) -> None:
    """Make ``wide`` compute exactly ``core``'s function: ``core``'s channels go to (random
    or leading) positions of every layer, the other channels are dead (zero weights, zero BN
    gamma and beta), so they output 0 and feed nothing."""
    g = torch.Generator().manual_seed(1)

    def positions(n_wide: int, n_core: int) -> torch.Tensor:
        if first:
            return torch.arange(n_core)
        return torch.randperm(n_wide, generator=g)[:n_core].sort().values

    c, w = core.backbone, wide.backbone
    keep1 = positions(6, 3)
    keep2 = positions(16, 8)
    keep3 = positions(120, 60)
    keep4 = positions(84, 42)
    flat = (keep2[:, None] * 25 + torch.arange(25)).flatten()
    with torch.no_grad():
        for p in wide.parameters():
            p.zero_()
        w.conv1[0].weight[keep1] = c.conv1[0].weight
        w.conv2[0].weight[keep2[:, None], keep1] = c.conv2[0].weight
        for wb, cb, keep in ((w.conv1[1], c.conv1[1], keep1), (w.conv2[1], c.conv2[1], keep2)):
            wb.weight[keep], wb.bias[keep] = cb.weight, cb.bias
            wb.running_mean.fill_(0.0)
            wb.running_var.fill_(1.0)
            wb.running_mean[keep], wb.running_var[keep] = cb.running_mean, cb.running_var
        w.fc[1].weight[keep3[:, None], flat] = c.fc[1].weight
        w.fc[1].bias[keep3] = c.fc[1].bias
        w.fc[3].weight[keep4[:, None], keep3] = c.fc[3].weight
        w.fc[3].bias[keep4] = c.fc[3].bias
        wide.head.fc.weight[:, keep4] = core.head.fc.weight
        wide.head.fc.bias.copy_(core.head.fc.bias)


def _lenets():
    torch.manual_seed(0)
    core = MODELS.build(LENET5HALF)
    core.train()
    with torch.no_grad():  # non-trivial BN statistics
        for _ in range(3):
            core(torch.randn(32, 1, 32, 32), mode='tensor')
    # gammas and hidden weights bounded away from zero, so dead channels rank last
    with torch.no_grad():
        for bn in (core.backbone.conv1[1], core.backbone.conv2[1]):
            bn.weight.copy_(0.5 + torch.rand_like(bn.weight))
        for fc in (core.backbone.fc[1], core.backbone.fc[3]):
            fc.weight.add_(0.05 * fc.weight.sign())
    return core.eval(), MODELS.build(LENET5BN).eval(), MODELS.build(LENET5HALF).eval()


@pytest.mark.parametrize('order', ['magnitude', 'first'])
def test_slice_recovers_a_student_hidden_in_the_teacher(order):
    """A teacher that is a half-width network padded with dead channels (at random positions
    for 'magnitude', leading positions for 'first') slices back into exactly that network:
    this checks the kept outputs, the matching inputs (also across the conv -> fc flatten),
    the BN parameters and running statistics, and the head."""
    core, teacher, student = _lenets()
    _embed(core, teacher, first=(order == 'first'))
    x = torch.randn(16, 1, 32, 32)
    with torch.no_grad():
        expected = core(x, mode='tensor')
        assert torch.allclose(teacher(x, mode='tensor'), expected, atol=1e-5)
        before = student(x, mode='tensor')
        init_student_from_teacher(student, teacher, order)
        after = student(x, mode='tensor')
    assert not torch.allclose(before, expected, atol=1e-2)
    assert torch.allclose(after, expected, atol=1e-5)


def test_magnitude_order_differs_from_first_on_a_padded_teacher():
    core, teacher, student = _lenets()
    _embed(core, teacher, first=False)
    init_student_from_teacher(student, teacher, 'first')
    x = torch.randn(16, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(student(x, mode='tensor'), core(x, mode='tensor'), atol=1e-2)


def test_same_width_copies_the_teacher():
    torch.manual_seed(0)
    teacher, student = MODELS.build(LENET5BN), MODELS.build(LENET5BN)
    init_student_from_teacher(student, teacher)
    for (k, a), b in zip(teacher.state_dict().items(), student.state_dict().values()):
        assert torch.equal(a, b), k


def test_clear_errors(teacher_ckpt):
    _, teacher, _ = _lenets()
    wider = MODELS.build(dict(LENET5BN, backbone=dict(LENET5BN['backbone'], width=2.0),
                              head=dict(LENET5BN['head'], in_channels=168)))
    with pytest.raises(ValueError, match='wider in the student'):
        init_student_from_teacher(wider, teacher)
    other = MODELS.build(dict(type='ImageClassifier',
                              backbone=dict(type='WideResNet', depth=10, widen_factor=1,
                                            in_channels=1),
                              head=dict(type='LinearClsHead', num_classes=10, in_channels=64)))
    with pytest.raises(ValueError, match='student_init_from_teacher'):
        init_student_from_teacher(other, teacher)
    with pytest.raises(ValueError, match="'first', 'magnitude'"):
        init_student_from_teacher(MODELS.build(LENET5HALF), teacher, 'largest')

    from mmdfkd.models.algorithms import DataFreeDistiller
    synth = dict(type='InversionSynthesizer', image_shape=(1, 32, 32), num_classes=10,
                 batch_size=8, iterations=1)
    with pytest.raises(ValueError, match='model.student_init_from_teacher must be'):
        DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF, synthesizer=synth,
                          teacher_ckpt=teacher_ckpt, distill_loss=dict(type='KLDivergenceLoss'),
                          student_init_from_teacher='largest')
    hard = dict(type='HardLabelTeacher', num_classes=10, model=LENET5BN,
                checkpoint=teacher_ckpt)
    priors = dict(type='ImagePriorSynthesizer', batch_size=8, num_images=8)
    with pytest.raises(TeacherAccessError, match='student_init_from_teacher needs a white-box'):
        DataFreeDistiller(teacher=hard, student=LENET5HALF, synthesizer=priors,
                          teacher_ckpt=None, distill_loss=dict(type='KLDivergenceLoss'),
                          student_init_from_teacher='first')


def test_distiller_starts_the_student_from_the_teacher(teacher_ckpt):
    """``init_weights`` (called by the runner before training, not on resume) slices the
    loaded teacher into the student."""
    from mmdfkd.models.algorithms import DataFreeDistiller
    synth = dict(type='InversionSynthesizer', image_shape=(1, 32, 32), num_classes=10,
                 batch_size=8, iterations=1)
    distiller = DataFreeDistiller(teacher=LENET5BN, student=LENET5HALF, synthesizer=synth,
                                  teacher_ckpt=teacher_ckpt,
                                  distill_loss=dict(type='KLDivergenceLoss'),
                                  student_init_from_teacher='first')
    distiller.init_weights()
    t_conv = distiller.teacher.backbone.conv1[0].weight
    assert torch.equal(distiller.student.backbone.conv1[0].weight, t_conv[:3])
    assert torch.equal(distiller.student.head.fc.bias, distiller.teacher.head.fc.bias)
