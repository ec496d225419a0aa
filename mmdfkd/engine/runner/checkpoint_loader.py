"""Make mmengine 0.10.7 resume work on torch >= 2.6.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``, which refuses the
``HistoryBuffer`` and numpy objects that mmengine stores in the message hub of every
checkpoint, so ``resume=True`` fails. mmengine only fixed this on an unreleased branch.
We replace the loader for local paths (the user's own files) with one that passes
``weights_only=False``; remote schemes keep mmengine's loaders.
"""
import glob
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


def weights_mismatch(expected: dict[str, torch.Tensor], state: dict) -> list[str]:
    """What keeps ``state`` from loading into a module whose ``state_dict()`` is ``expected``:
    one line per missing key or per weight of another shape (empty when it fits).

    mmengine's non-strict loading only logs both, so the tools check first."""
    problems = []
    for key, value in expected.items():
        if key.endswith('_extra_state'):
            continue
        if key not in state:
            problems.append(f'{key} is missing')
        elif hasattr(state[key], 'shape') and tuple(state[key].shape) != tuple(value.shape):
            problems.append(f'{key} has shape {tuple(state[key].shape)} in the checkpoint but '
                            f'{tuple(value.shape)} in the config')
    return problems


def run_config_hint(filename: str) -> str:
    """Where the config of the run that saved ``filename`` is: mmengine dumps it into the
    run's work dir next to the checkpoints."""
    dumped = sorted(glob.glob(osp.join(osp.dirname(osp.abspath(filename)), '*.py')))
    if dumped:
        return f'the config the run used ({dumped[0]})'
    return 'the config the run used (mmengine dumps it into the run\'s work dir as <config>.py)'


def check_checkpoint_fits(model: torch.nn.Module, filename: str, tool: str) -> None:
    """Refuse, before evaluating, a checkpoint without the weights of what is evaluated.

    mmengine loads ``load_from`` non-strictly and only logs missing keys and shape
    mismatches, so a teacher's ``epoch_N.pth`` given with a data-free config (or a data-free
    run's ``iter_N.pth`` with a teacher config, or a run of another student with this one)
    would evaluate randomly initialised weights and print a meaningless accuracy. A data-free
    model (one with a ``student``) needs its ``student.*`` weights; any other model all of
    its own.
    """
    model = getattr(model, 'module', model)
    state = load_local_checkpoint(filename, map_location='cpu')
    state = state.get('state_dict', state)
    expected = model.state_dict()
    data_free = isinstance(getattr(model, 'student', None), torch.nn.Module)
    if data_free:
        expected = {k: v for k, v in expected.items() if k.startswith('student.')}
    problems = weights_mismatch(expected, state)
    if not problems:
        return
    wanted = [k for k in expected if not k.endswith('_extra_state')]
    if data_free and not any(k.startswith('student.') for k in state):
        fix = ("a checkpoint saved by this data-free run (work_dirs/<run>/iter_N.pth, the last "
               "one named in the run's last_checkpoint file), not a teacher's")
    elif data_free:
        fix = (f'the config of the run that saved it: its student is another model; pass '
               f'{run_config_hint(filename)}')
    else:
        fix = ("a checkpoint of this config's model (a teacher's work_dirs/teachers/<name>/"
               'epoch_N.pth); a data-free run\'s iter_N.pth goes with its data-free config')
    raise ValueError(f'{filename} does not fit {len(problems)} of the {len(wanted)} weights '
                     f"{tool} evaluates ({'; '.join(problems[:3])}): it needs {fix}.")
