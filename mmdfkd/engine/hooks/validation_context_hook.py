"""Log training counters (e.g. teacher queries) next to every validation result."""
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mmengine.hooks import Hook

from mmdfkd.registry import HOOKS

if TYPE_CHECKING:
    from mmengine.runner import Runner


@HOOKS.register_module()
class ValidationContextHook(Hook):
    """Copy the latest value of training scalars into each validation record.

    A data-free student's accuracy is worth as much as what it cost: for a black-box teacher
    the number of images sent to it. The training log has ``teacher_queries`` only every
    ``LoggerHook`` interval, which need not fall on a validation, so an accuracy-vs-queries
    curve read from the log would have to guess. This hook puts the count at the moment of
    each validation into that validation's record (``vis_data/*.json``, ``scalars.json``, the
    text log), and ``tools/analysis_tools/analyze_logs.py plot_curve --x teacher_queries``
    plots against it.

    It reads the message hub's ``train/<key>`` buffers, which mmengine updates every
    iteration from the model's log variables, and writes ``val/<key>`` (or ``test/<key>``
    after a test run) before ``LoggerHook`` collects the record. A key the run has not
    logged yet (validation before the first iteration, a method that does not count it) is
    left out.

    Args:
        keys (Sequence[str]): Training scalars to copy. Defaults to ``('teacher_queries',)``.
    """

    # after RuntimeInfoHook (VERY_HIGH) has stored the metrics, before LoggerHook
    # (BELOW_NORMAL) writes the record
    priority = 'NORMAL'

    def __init__(self, keys: Sequence[str] = ('teacher_queries', )) -> None:
        if isinstance(keys, str) or not keys or not all(isinstance(k, str) and k for k in keys):
            raise ValueError('ValidationContextHook keys must be a non-empty list of training '
                             f"scalar names, e.g. keys=['teacher_queries']; got {keys!r}")
        self.keys = tuple(keys)

    def _copy(self, runner: 'Runner', mode: str) -> None:
        hub = runner.message_hub
        for key in self.keys:
            buffer = hub.log_scalars.get(f'train/{key}')
            if buffer is not None:
                hub.update_scalar(f'{mode}/{key}', buffer.current())

    def after_val_epoch(self, runner: 'Runner', metrics: dict | None = None) -> None:
        """Copy the training scalars into the validation record."""
        self._copy(runner, 'val')

    def after_test_epoch(self, runner: 'Runner', metrics: dict | None = None) -> None:
        """Copy the training scalars into the test record."""
        self._copy(runner, 'test')
