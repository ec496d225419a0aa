"""Make mmengine 0.10.7 resume work on torch >= 2.6.

torch 2.6 changed ``torch.load``'s default to ``weights_only=True``, which refuses the
``HistoryBuffer`` and numpy objects that mmengine stores in the message hub of every
checkpoint, so ``resume=True`` fails. mmengine only fixed this on an unreleased branch.
We replace the loader for local paths (the user's own files) with one that passes
``weights_only=False``; remote schemes keep mmengine's loaders.
"""
import glob
import os.path as osp
import pickle

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str, map_location: str | torch.device | None = None) -> dict:
    """Load a checkpoint from a local path, allowing the objects mmengine itself saves."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(_missing_checkpoint(filename))
    try:
        return torch.load(filename, map_location=map_location, weights_only=False)
    except (EOFError, pickle.UnpicklingError, RuntimeError) as error:
        # torch says "Ran out of input" for an empty file and a miniz error for a cut one.
        if isinstance(error, RuntimeError) and 'PytorchStreamReader' not in str(error):
            raise
        earlier = sorted((p for p in glob.glob(osp.join(osp.dirname(osp.abspath(filename)),
                                                        '*.pth'))
                          if osp.abspath(p) != osp.abspath(filename)),
                         key=lambda p: (len(p), p))
        hint = (f" Checkpoints next to it: {', '.join(osp.basename(p) for p in earlier)}; "
                'give the latest complete one (e.g. to --resume PATH).' if earlier else '')
        with open(filename, 'rb') as file:
            head = file.read(2)
        # torch writes zip archives ('PK'); older ones are pickles (protocol byte 0x80).
        if head and head != b'PK' and head[:1] != b'\x80':
            raise ValueError(
                f'{filename} is not a checkpoint file at all: it starts with {head!r}, where '
                "torch's files start with b'PK' (zip) or b'\\x80' (pickle). Check the path "
                f'(a .pth saved by torch.save or a run\'s work dir).{hint}') from error
        raise ValueError(
            f'{filename} is not a complete checkpoint ({type(error).__name__}: '
            f'{str(error).split(". ")[0]}): it was cut short (a full disk, or a process killed '
            f'while saving it) or damaged since.{hint}'
        ) from error


def _checkpoints_in(folder: str) -> list[str]:
    """The ``.pth`` files of ``folder``, in the order a run writes them (iter_9 before
    iter_10)."""
    return sorted(glob.glob(osp.join(folder, '*.pth')), key=lambda p: (len(p), p))


def _missing_checkpoint(filename: str) -> str:
    """Why ``filename`` cannot be loaded and which file to give instead: a work dir names
    its latest checkpoint, a missing file the checkpoints beside it (mmengine said only
    "can not be found")."""
    if osp.isdir(filename):
        last = osp.join(filename, 'last_checkpoint')
        latest = None
        if osp.isfile(last):
            with open(last) as f:
                latest = f.read().strip() or None
        found = _checkpoints_in(filename)
        if latest or found:
            return (f'{filename} is a folder, not a checkpoint file: give one of its '
                    f'checkpoints, e.g. its latest, {latest or found[-1]} (for --resume, '
                    f'`--resume` alone with `--work-dir {filename}` takes the latest).')
        return f'{filename} is a folder holding no checkpoint (*.pth): give a checkpoint file.'
    folder = osp.dirname(filename) or '.'
    found = _checkpoints_in(folder) if osp.isdir(folder) else []
    if found:
        return (f"{filename} does not exist; the checkpoints in {folder}: "
                f"{', '.join(osp.basename(p) for p in found)}.")
    return (f'{filename} does not exist' +
            ('.' if osp.isdir(folder) else f' (nor does its folder {folder}).'))


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


def weights_mismatch(expected: dict[str, torch.Tensor], state: dict,
                     unexpected: bool = True, examples: int = 3) -> list[str]:
    """What keeps ``state`` from loading strictly into a module whose ``state_dict()`` is
    ``expected``: one phrase each for missing keys, keys the module lacks (with
    ``unexpected``) and weights of another shape, naming a few of each (empty when it fits).

    mmengine's non-strict loading only logs these and torch's strict one dumps every key,
    so the tools and the teacher loader check first and say what differs."""
    # ``_extra_state`` entries (pool index, query counts) are state, not weights: a module
    # may hold none yet and still load one.
    expected = {k: v for k, v in expected.items() if not k.endswith('_extra_state')}
    missing = sorted(set(expected) - set(state))
    extra = sorted(k for k in set(state) - set(expected)
                   if not k.endswith('_extra_state')) if unexpected else []
    reshaped = sorted(k for k in set(expected) & set(state)
                      if tuple(expected[k].shape) != tuple(getattr(state[k], 'shape', ())))

    def some(keys: list[str]) -> str:
        more = f', ... ({len(keys)} in all)' if len(keys) > examples else ''
        return ', '.join(keys[:examples]) + more

    problems = []
    if missing:
        problems.append(f'missing {some(missing)}')
    if extra:
        problems.append(f'not in the model {some(extra)}')
    if reshaped:
        k = reshaped[0]
        problems.append(f'other shapes {some(reshaped)} (e.g. {k}: checkpoint '
                        f'{tuple(state[k].shape)}, model {tuple(expected[k].shape)})')
    return problems


def run_config_hint(filename: str, checkpoint: dict) -> str:
    """Where the config of the run that saved ``filename`` (loaded as ``checkpoint``) is.

    mmengine dumps the config into the run's work dir and keeps its text in the checkpoint's
    ``meta['cfg']``; the dumped file with that text is the run's (a work dir can hold other
    configs' dumps, e.g. of a run started there by mistake)."""
    meta = checkpoint.get('meta') if isinstance(checkpoint.get('meta'), dict) else {}
    text = str(meta.get('cfg', '')).strip()
    dumped = sorted(glob.glob(osp.join(osp.dirname(osp.abspath(filename)), '*.py')))
    for path in dumped:
        with open(path, encoding='utf-8') as f:
            if text and f.read().strip() == text:
                return f'the config the run used ({path})'
    if len(dumped) == 1 and not text:
        return f'the config the run used ({dumped[0]})'
    return ("the config the run used (mmengine dumps it into the run's work dir as "
            "<config>.py; its text is also in the checkpoint's meta['cfg'])")


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
    saved = load_local_checkpoint(filename, map_location='cpu')
    state = saved.get('state_dict', saved)
    expected = model.state_dict()
    data_free = isinstance(getattr(model, 'student', None), torch.nn.Module)
    if data_free:
        expected = {k: v for k, v in expected.items() if k.startswith('student.')}
    problems = weights_mismatch(expected, state, unexpected=False)
    if not problems:
        return
    # An exported student (tools/export_student.py) is the student without its prefix.
    exported = data_free and not weights_mismatch(
        {k[len('student.'):]: v for k, v in expected.items()}, state, unexpected=False)
    if exported:
        fix = ("the data-free run's checkpoint: this file holds the student alone (as "
               'tools/export_student.py writes it), so test it with the student_config.py '
               'exported next to it, or give the iter_N.pth it was exported from')
    elif data_free and not any(k.startswith('student.') for k in state):
        fix = ("a checkpoint saved by this data-free run (work_dirs/<run>/iter_N.pth, the last "
               "one named in the run's last_checkpoint file), not a teacher's")
    elif data_free:
        fix = (f'the config of the run that saved it: its student is another model; pass '
               f'{run_config_hint(filename, saved)}')
    else:
        fix = ("a checkpoint of this config's model (a teacher's work_dirs/teachers/<name>/"
               'epoch_N.pth); a data-free run\'s iter_N.pth goes with its data-free config')
    raise ValueError(f"{filename} does not fit the weights {tool} evaluates "
                     f"({'; '.join(problems)}): it needs {fix}.")
