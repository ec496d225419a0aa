import pytest
import torch

from mmdfkd.engine.hooks import per_class_grid


def test_per_class_grid_puts_each_class_in_its_row():
    images = torch.stack([torch.full((1, 2, 2), float(c + 1)) for c in (0, 2, 2, 1)])
    labels = torch.tensor([0, 2, 2, 1])
    grid = per_class_grid(images, labels, num_classes=3, per_class=2)
    assert grid.shape == (1, 6, 4)
    assert (grid[:, 0:2, 0:2] == 1).all() and (grid[:, 0:2, 2:4] == 0).all()  # 1 of class 0
    assert (grid[:, 2:4, 0:2] == 2).all()  # class 1 row holds value 2 (c=1 -> 1+1)
    assert (grid[:, 4:6, :] == 3).all()  # class 2: two images


def test_synthetic_grid_goes_to_tensorboard(teacher_ckpt, tmp_path):
    import glob

    import pytest
    pytest.importorskip('tensorboard')
    from .conftest import needs_fmnist  # noqa: F401
    from .runner_utils import run_datafree
    run_datafree('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path), teacher_ckpt,
                 max_iters=1, **{'visualizer.vis_backends': [dict(type='TensorboardVisBackend')]})
    events = glob.glob(str(tmp_path / '*' / 'vis_data' / 'events.out.tfevents.*'))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(events[0])
    acc.Reload()
    assert 'synthetic_per_class' in acc.Tags()['images']


@pytest.mark.parametrize('key,value', [('interval', 0), ('num_samples', 0), ('per_class', -1),
                                       ('interval', 2.5)])
def test_visualization_hook_refuses_counts_below_one(key, value):
    """`interval=0` used to draw silently only at the end, `num_samples=0` an empty grid."""
    from mmdfkd.engine.hooks import SyntheticVisualizationHook
    with pytest.raises(ValueError, match=rf'SyntheticVisualizationHook {key} must be an '
                                         r'integer >= 1 \(custom_hooks\)'):
        SyntheticVisualizationHook(**{key: value})
