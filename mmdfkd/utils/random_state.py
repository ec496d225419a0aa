"""Save and restore the global random sources a run draws from."""
import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch


def capture_random_state() -> dict:
    """The state of every global random source a run draws from: Python's ``random``,
    numpy's legacy global generator, torch's CPU generator and, when CUDA is in use, the
    current device's generator."""
    state = dict(python=random.getstate(), numpy=np.random.get_state(),
                 torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state()
    return state


def restore_random_state(state: dict) -> None:
    """Set the global random sources back to ``state`` (from ``capture_random_state``)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'].cpu())


@contextlib.contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run a block without moving the global random sources: whatever it draws, the
    sources are as before it afterwards."""
    state = capture_random_state()
    try:
        yield
    finally:
        restore_random_state(state)
