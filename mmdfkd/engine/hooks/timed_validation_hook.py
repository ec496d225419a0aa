"""Validate at fixed wall-clock times: accuracy after N minutes, whatever the schedule."""
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmengine.hooks import Hook

from mmdfkd.engine.runner import rank0_seconds, resumed_train_elapsed_s
from mmdfkd.registry import HOOKS

if TYPE_CHECKING:
    from mmengine.runner import Runner


@HOOKS.register_module()
class TimedValidationHook(Hook):
    """Run the validation loop once training has been running for each of ``marks_s``.

    Time-to-accuracy is what users of a data-free method wait for, and methods run at very
    different speeds per iteration, so iteration counts do not compare them. After the first
    iteration that ends past a mark, the hook runs ``runner.val_loop`` and logs every metric
    again under ``<metric>@<mark>s`` (e.g. ``accuracy/top1@180s``) with the elapsed seconds as
    ``elapsed_s@<mark>s``, in the same scalars file as the rest of the run. Time counts from
    the start of training (``before_train``), validation time included. Works with
    ``DataFreeTrainLoop`` and mmengine's epoch/iteration loops. A run resumed under
    ``DataFreeTrainLoop`` continues the clock of its checkpoint (``train_elapsed_s`` in the
    message hub): marks passed before the checkpoint are not measured again. A run that does
    not validate (``--no-validate``) warns at its start and trains on without the marks.
    In a distributed run every process reads rank 0's clock, so all validate at a mark.

    Args:
        marks_s (Sequence[float]): Wall-clock marks in seconds.
        stop_after_last (bool): End training after the last mark (at the end of the current
            epoch for epoch-based loops); used to measure early accuracy only.
    """

    priority = 'LOW'

    def __init__(self, marks_s: Sequence[float] = (180.0, ), stop_after_last: bool = False
                 ) -> None:
        marks = sorted(float(m) for m in marks_s)
        if not marks or marks[0] <= 0:
            raise ValueError(f'TimedValidationHook marks_s must be positive seconds, got '
                             f'{list(marks_s)}')
        self.marks = marks
        self.stop_after_last = stop_after_last
        self._start: float | None = None
        self._done = 0

    def before_train(self, runner: 'Runner') -> None:
        """Start the clock (minus the training time of the run being resumed) and skip the
        marks already measured; warn when the run does not validate.
        """
        if runner.val_loop is None:
            # Checked here, not at the first mark: a run without validation used to train
            # until the first mark (3 minutes in the benchmark) and then fail.
            runner.logger.warning(
                'TimedValidationHook: this run does not validate (--no-validate, or no '
                'val_dataloader / val_evaluator / val_cfg in the config), so its marks '
                f'{self.marks} s are not measured.')
            self._start = None
            return
        spent = resumed_train_elapsed_s(runner.message_hub)
        self._start = time.perf_counter() - spent
        self._done = sum(mark <= spent for mark in self.marks)

    def after_train_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        """Validate once a mark has passed on rank 0's clock and log the metrics tagged with the
        mark (e.g. ``accuracy/top1@180s``); stop training after the last mark with
        ``stop_after_last``.
        """
        if self._start is None or self._done >= len(self.marks):
            return
        # Rank 0's clock on every rank: a mark one rank has passed and another not would
        # start a validation (with its collectives) on one rank only.
        elapsed = rank0_seconds(time.perf_counter() - self._start)
        if elapsed < self.marks[self._done]:
            return
        mark = self.marks[self._done]
        # Every mark already passed gets this one measurement (an iteration may span several).
        while self._done < len(self.marks) and elapsed >= self.marks[self._done]:
            self._done += 1
        metrics = runner.val_loop.run() or {}
        runner.model.train()  # the val loop left the model in eval mode mid-epoch
        tag = f'@{mark:g}s'
        scalars = {f'{k}{tag}': v for k, v in metrics.items()
                   if isinstance(v, (int, float))}
        scalars[f'elapsed_s{tag}'] = elapsed
        runner.visualizer.add_scalars(scalars, step=runner.iter + 1)
        runner.logger.info(f'TimedValidationHook: {elapsed:.0f}s into training (mark '
                           f'{mark:g}s): ' + ', '.join(f'{k}={v:.4g}' for k, v in
                                                       scalars.items()))
        if self.stop_after_last and self._done >= len(self.marks):
            runner.logger.info('TimedValidationHook: last mark reached; stopping training.')
            runner.train_loop.stop_training = True
