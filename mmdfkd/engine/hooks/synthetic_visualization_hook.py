"""Save a grid of synthetic images, one row per teacher-predicted class."""
from typing import TYPE_CHECKING, Any

import torch
from mmengine.hooks import Hook

from mmdfkd.models.teachers import BaseTeacher
from mmdfkd.registry import HOOKS
from mmdfkd.utils import preserved_random_state

if TYPE_CHECKING:
    from mmengine.runner import Runner


def per_class_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                   per_class: int) -> torch.Tensor:
    """Arrange images in a ``num_classes x per_class`` grid (class c in row c).

    Rows with fewer images than ``per_class`` are left black, which makes class imbalance
    visible at a glance. Returns a (C, H*num_classes, W*per_class) tensor.
    """
    c, h, w = images.shape[1:]
    grid = images.new_zeros(c, h * num_classes, w * per_class)
    for cls in range(num_classes):
        picked = images[labels == cls][:per_class]
        for j, img in enumerate(picked):
            grid[:, cls * h:(cls + 1) * h, j * w:(j + 1) * w] = img
    return grid


@HOOKS.register_module()
class SyntheticVisualizationHook(Hook):
    """Every ``interval`` iterations, draw samples, label them with the teacher (no query
    is counted: this is for the user's eyes only; black-box teachers are not asked at all,
    the labels they gave are taken from the pool) and add a per-class grid to the
    visualizer (PNG with ``LocalVisBackend``, an image summary with ``TensorboardVisBackend``).

    Args:
        interval (int): Iterations between grids.
        num_samples (int): Images drawn to fill the grid.
        per_class (int): Columns per class row.
    """

    priority = 'LOW'

    def __init__(self, interval: int = 500, num_samples: int = 256, per_class: int = 8) -> None:
        for key, value in (('interval', interval), ('num_samples', num_samples),
                           ('per_class', per_class)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'SyntheticVisualizationHook {key} must be an integer >= 1 '
                                 f'(custom_hooks), got {value!r}; remove the hook to draw no '
                                 'grids')
        self.interval = interval
        self.num_samples = num_samples
        self.per_class = per_class

    def after_train_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        """Draw a grid every ``interval`` iterations and at the last one, leaving the random
        streams as they were.
        """
        if self.every_n_train_iters(runner, self.interval) or self.is_last_train_iter(runner):
            # Drawn under preserved streams: looking at the samples must not change what is
            # trained on (with or without this hook, at any interval, the run is the same).
            with preserved_random_state():
                self.draw(runner, step=runner.iter + 1)

    @torch.no_grad()
    def draw(self, runner: 'Runner', step: int) -> torch.Tensor:
        """Draw ``num_samples`` synthetic images as a per-class grid into the visualizer at
        ``step`` and log the class balance; returns the grid, (C, H, W) in pixel values.

        Labels come from the pool for a black-box teacher (never a new query), else from the
        teacher's top-1.
        """
        model = getattr(runner.model, 'module', runner.model)
        synthesizer = getattr(model.synthesizer, 'module', model.synthesizer)
        if isinstance(model.teacher, BaseTeacher):
            # A black-box teacher is never asked for the picture: its labels are in the pool.
            images, labels = synthesizer.sample_labelled(self.num_samples)
            num_classes = model.teacher.num_classes
        else:
            images = synthesizer.sample(self.num_samples)
            labels = model.teacher(images, mode='tensor').argmax(1)
            # an mmpretrain head's class count, or a TorchClassifier's own
            counted = getattr(getattr(model.teacher, 'head', model.teacher), 'num_classes', None)
            num_classes = int(counted or int(labels.max()) + 1)
        # Drawn on the CPU: the images may come from a GPU, the grid goes to an image file.
        images, labels = images.cpu(), labels.cpu()
        grid = per_class_grid(images, labels, num_classes, self.per_class)
        # Undo the data preprocessor's normalisation to show real pixel values.
        pre = model.data_preprocessor
        if getattr(pre, '_enable_normalize', False):
            grid = grid * pre.std.view(-1, 1, 1).cpu() + pre.mean.view(-1, 1, 1).cpu()
        else:
            grid = (grid - grid.min()) / (grid.max() - grid.min() + 1e-8) * 255
        img = grid.clamp(0, 255).byte().permute(1, 2, 0).numpy()
        if img.shape[2] == 1:
            img = img.repeat(3, axis=2)
        runner.visualizer.add_image('synthetic_per_class', img, step=step)
        counts = torch.bincount(labels, minlength=num_classes).tolist()
        runner.logger.info(f'synthetic class balance (teacher top-1 of {len(labels)}): '
                           f'{counts}')
        return grid
