"""Keep the random streams of a data-free run across resumes and validations."""
from typing import TYPE_CHECKING, Any

from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook

from mmdfkd.registry import HOOKS
from mmdfkd.utils.random_state import capture_random_state, restore_random_state

if TYPE_CHECKING:
    from mmengine.runner import Runner


RANDOM_STATE_KEY = 'random_state'


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make a resumed data-free run draw the random numbers an uninterrupted one would.

    A data-free run's images come from random draws (noise, priors, targets, augmentations),
    so its random streams are part of its state. mmengine stores only the seed, and a resumed
    run starts from the seed again: it redraws the noise and priors of its first iterations,
    and a DeepInversion pool fills with copies of the images it already holds (a DIP-KD
    run's label cache then answers them, so it buys fewer new labels). This hook saves every
    process's random state in each checkpoint (``meta['random_state']``, a list by rank) and
    sets it back just before the first resumed iteration.

    Validation does not move the training streams either: the sources are saved before
    each validation and set back after it (a ``DataLoader`` draws a seed from torch's
    generator each time it is iterated), so where timed or periodic validations fall does
    not change what is trained on.

    ``DataFreeRunner`` adds this hook to ``custom_hooks`` itself; nothing needs to be
    configured (listing it, e.g. ``dict(type='RandomStateHook')``, is the same). A
    checkpoint saved by another number of processes resumes with the seed's streams, with a
    warning.
    """

    priority = 'NORMAL'  # after_train_iter must run before CheckpointHook (VERY_LOW) saves

    def __init__(self) -> None:
        self._snapshot: list[dict] | None = None  # every rank's state after the last iteration
        self._pending: dict | None = None  # this rank's state to restore before training
        self._before_val: dict | None = None

    def after_train_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:
        """Keep every process's random state after the iteration for the next checkpoint."""
        # Taken on every process, where a collective is allowed; the checkpoint itself is
        # written by rank 0 alone (``before_save_checkpoint`` runs only there).
        state = capture_random_state()
        self._snapshot = all_gather_object(state) if get_world_size() > 1 else [state]

    def before_save_checkpoint(self, runner: 'Runner', checkpoint: dict) -> None:
        """Store the states kept after the last iteration as ``meta['random_state']``."""
        states = self._snapshot
        if states is None or get_world_size() == 1:
            states = [capture_random_state()]
        checkpoint.setdefault('meta', {})[RANDOM_STATE_KEY] = states

    def resume_from(self, runner: 'Runner', checkpoint: dict) -> None:
        """Restore this process's state from a checkpoint being resumed (called by
        ``DataFreeRunner.resume``; a checkpoint only loaded as weights, ``load_from``, keeps
        the seed's streams). The state is set just before the first resumed iteration."""
        states = checkpoint.get('meta', {}).get(RANDOM_STATE_KEY)
        if states is None:
            return  # a checkpoint from before this hook: the seed's streams, as mmengine does
        if len(states) != get_world_size():
            runner.logger.warning(
                f'the checkpoint holds the random state of {len(states)} process(es) and this '
                f'run has {get_world_size()}: the random streams restart from the seed.')
            return
        self._pending = states[get_rank()]

    def before_train_iter(self, runner: 'Runner', batch_idx: int, data_batch: Any = None) -> None:
        """Set the resumed state back, once, just before the first resumed iteration."""
        if self._pending is not None:
            restore_random_state(self._pending)
            self._pending = None

    def before_val(self, runner: 'Runner') -> None:
        """Save the training streams before validation draws from them."""
        self._before_val = capture_random_state()

    def after_val(self, runner: 'Runner') -> None:
        """Set the training streams back to where validation found them."""
        if self._before_val is not None:
            restore_random_state(self._before_val)
            self._before_val = None
