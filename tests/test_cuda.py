"""What only a GPU exercises (skipped on the CPU-only CI; run on a GPU machine with
``MMDFKD_TEST_DEVICE=cuda python -m pytest tests/test_cuda.py``: the rest of the suite hides
GPUs, see ``conftest.py``). ``tools/misc/smoke_configs.py`` runs every shipped config there."""
import glob

import pytest
import torch

from mmdfkd.models.utils import init_student_from_teacher

from .runner_utils import run_datafree
from .test_teacher_slice import _lenets

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason='needs a CUDA GPU, which the suite hides unless MMDFKD_TEST_DEVICE=cuda')


@pytest.mark.parametrize('order', ['fold', 'magnitude', 'first'])
def test_student_from_teacher_on_a_gpu_is_the_cpu_student_and_stays_there(order):
    _, teacher, cpu_student = _lenets()
    _, gpu_teacher, gpu_student = _lenets()
    gpu_teacher.load_state_dict(teacher.state_dict())
    gpu_student.load_state_dict(cpu_student.state_dict())
    gpu_teacher.cuda()
    gpu_student.cuda()
    params = list(gpu_student.parameters())  # what an optimiser built before holds
    init_student_from_teacher(cpu_student, teacher, order, seed=3)
    init_student_from_teacher(gpu_student, gpu_teacher, order, seed=3)
    assert all(p.is_cuda for p in gpu_student.parameters())
    assert all(t.is_cuda for t in gpu_teacher.state_dict().values())
    assert all(a is b for a, b in zip(params, gpu_student.parameters()))
    for key, value in cpu_student.state_dict().items():
        torch.testing.assert_close(gpu_student.state_dict()[key].cpu(), value, msg=key)


def test_folded_inversion_run_with_its_image_grid_on_a_gpu(teacher_ckpt, tmp_path):
    runner = run_datafree(
        'deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py',
        str(tmp_path), teacher_ckpt, max_iters=1,
        custom_hooks=[dict(type='SyntheticVisualizationHook', interval=1)])
    assert next(runner.model.student.parameters()).is_cuda
    assert glob.glob(str(tmp_path / '*' / 'vis_data' / 'vis_image' / 'synthetic_per_class*'))


def test_a_query_cache_restored_on_a_gpu_takes_new_answers(teacher_ckpt):
    """A GPU resume maps the checkpoint, the teacher's cache included, to the GPU; the cache
    must come back on the CPU, where every new answer is kept, or the next checkpoint cannot
    stack them."""
    from mmdfkd.registry import MODELS

    from .conftest import LENET5BN
    teacher = MODELS.build(dict(type='HardLabelTeacher', num_classes=10, model=LENET5BN,
                                checkpoint=teacher_ckpt)).cuda()
    seen = torch.rand(3, 1, 32, 32, device='cuda')
    teacher.query_labels(seen)
    state = {k: v.cuda() for k, v in teacher.get_extra_state().items()}
    teacher.set_extra_state(state)
    teacher.query_labels(torch.rand(2, 1, 32, 32, device='cuda'))
    restored = teacher.get_extra_state()
    assert restored['answers'].shape[0] == 5 and restored['keys'].shape == (5, 20)
    assert teacher.query_labels(seen).is_cuda and teacher.cache_hits == 3
