"""Make mmengine 0.10.7 resume work on torch >= 2.6.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``, which refuses the
``HistoryBuffer`` and numpy objects that mmengine stores in the message hub of every
checkpoint, so ``resume=True`` fails. mmengine only fixed this on an unreleased branch.
We replace the loader for local paths (the user's own files) with one that passes
``weights_only=False``; remote schemes keep mmengine's loaders.
"""
import os.path as osp

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str, map_location=None) -> dict:
    """Load a checkpoint from a local path, allowing the objects mmengine itself saves."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def load_run_checkpoint(filename: str, tool: str) -> dict:
    """A data-free run's checkpoint (``work_dirs/<run>/iter_N.pth``), refused with a clear
    error when it holds no ``student.*`` weights, e.g. the teacher's own checkpoint given to
    ``tools/synthesize.py`` or ``tools/export_student.py`` (``tool`` names the caller)."""
    state = load_local_checkpoint(filename, map_location='cpu')
    if not any(k.startswith('student.') for k in state.get('state_dict', state)):
        raise ValueError(f'{filename} holds no `student.*` weights: {tool} needs a checkpoint '
                         'saved by a data-free run (work_dirs/<run>/iter_N.pth, the last one '
                         "named in the run's last_checkpoint file), not a teacher's.")
    return state


def check_checkpoint_fits(model: torch.nn.Module, filename: str, tool: str) -> None:
    """Refuse, before evaluating, a checkpoint without the weights of what is evaluated.

    mmengine loads ``load_from`` non-strictly and only logs missing keys, so a teacher's
    ``epoch_N.pth`` given with a data-free config (or a data-free run's ``iter_N.pth`` with a
    teacher config) would evaluate randomly initialised weights and print a meaningless
    accuracy. A data-free model (one with a ``student``) needs its ``student.*`` weights; any
    other model all of its own.
    """
    model = getattr(model, 'module', model)
    state = load_local_checkpoint(filename, map_location='cpu')
    keys = set(state.get('state_dict', state))
    wanted = [k for k in model.state_dict() if not k.endswith('_extra_state')]
    data_free = isinstance(getattr(model, 'student', None), torch.nn.Module)
    if data_free:
        wanted = [k for k in wanted if k.startswith('student.')]
    missing = [k for k in wanted if k not in keys]
    if not missing:
        return
    if data_free:
        fix = ("a checkpoint saved by this data-free run (work_dirs/<run>/iter_N.pth, the last "
               "one named in the run's last_checkpoint file), not a teacher's")
    else:
        fix = ("a checkpoint of this config's model (a teacher's work_dirs/teachers/<name>/"
               'epoch_N.pth); a data-free run\'s iter_N.pth goes with its data-free config')
    raise ValueError(f'{filename} lacks {len(missing)} of the {len(wanted)} weights {tool} '
                     f"evaluates (e.g. {', '.join(missing[:3])}): it needs {fix}.")
