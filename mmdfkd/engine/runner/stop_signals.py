"""Stop training at the end of the current iteration on SIGINT / SIGTERM, with a checkpoint.

A pre-empted job (SIGTERM from a scheduler) or a Ctrl-C would otherwise lose everything since
the last periodic checkpoint; with this, the iteration under way finishes, its checkpoint is
saved and ``--resume`` continues exactly from it. A second signal aborts at once.
"""
import signal
import threading
from types import FrameType

import torch
from mmengine import dist
from mmengine.logging import MMLogger

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Context manager that records the first stop signal instead of dying on it.

    Handlers are installed only in the main thread (Python allows no other); elsewhere the
    signals keep their usual effect. ``requested()`` agrees across ranks, so distributed
    workers stop at the same iteration.
    """

    def __init__(self, logger: MMLogger | None = None) -> None:
        self.logger = logger
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> 'StopSignals':
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                # A signal the process was started to ignore (e.g. SIGINT for a background
                # job of a non-interactive shell) stays ignored.
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        # The next signal gets the usual behaviour (e.g. a second Ctrl-C aborts at once).
        signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
        if self.logger is not None:
            self.logger.warning(f'{signal.Signals(signum).name} received: finishing this '
                                'iteration, saving a checkpoint and stopping (send it again '
                                'to abort without saving).')

    def requested(self) -> bool:
        """Whether any rank got a stop signal."""
        flag = torch.tensor([0 if self.signum is None else int(self.signum)])
        if dist.get_world_size() > 1:
            dist.all_reduce(flag, op='max')
            if self.signum is None and int(flag):
                self.signum = int(flag)
        return bool(int(flag))
