"""Write files whole or not at all, and say plainly when the disk refused them.

A full disk made ``torch.save`` fail with "[enforce fail at inline_container.cc:672] .
unexpected pos 832 vs 726" (or "basic_ios::clear: iostream error"), which names neither the
file nor the cause, and left a truncated file under the final name. A process killed
mid-write (SIGKILL, the OOM killer) left one too, and ``--resume PATH`` on it failed with
"failed finding central directory". Writing to a temporary name in the same folder and
renaming it (atomic on POSIX) means a file under its final name is always complete.
"""
import errno
import os
import os.path as osp
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import torch

PARTIAL_SUFFIX = '.part'


def _free_mib(folder: str) -> str:
    try:
        return f'{shutil.disk_usage(folder).free / 2**20:.1f} MiB'
    except OSError:
        return 'unknown space'


class WriteFailedError(OSError):
    """A file could not be written; the message names it, the free space and what to do."""


@contextmanager
def partial_path(path: str, what: str, advice: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success it becomes ``path``.

    On any failure the partial file is removed and :class:`WriteFailedError` is raised,
    naming ``what`` was written, ``path``, the cause, the free space and ``advice``.
    """
    partial = path + PARTIAL_SUFFIX
    try:
        yield partial
        os.replace(partial, path)
    except BaseException as error:
        if osp.lexists(partial):
            os.remove(partial)
        if not isinstance(error, (OSError, RuntimeError)):
            raise  # KeyboardInterrupt and the like: nothing to explain
        folder = osp.dirname(osp.abspath(path))
        full = isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT,
                                                              errno.EFBIG)
        cause = 'the disk is full' if full else f'{type(error).__name__}: {error}'
        raise WriteFailedError(
            errno.ENOSPC if full else getattr(error, 'errno', None) or errno.EIO,
            f'could not write {what} {path}: {cause} ({_free_mib(folder)} free in {folder}). '
            f'{advice}') from error


def save_whole(obj: Any, path: str, what: str, advice: str,
               save: Callable[[Any, BinaryIO], None] = torch.save) -> None:
    """``save(obj, file)`` into a temporary file that becomes ``path`` (see
    :func:`partial_path`).

    The file is opened here, not by torch: torch's own writer turns the operating system's
    "No space left on device" into an "enforce fail" or "iostream error", while a Python
    file object's write raises the ``OSError`` with its ``errno``.
    """
    with partial_path(path, what, advice) as partial, open(partial, 'wb') as file:
        save(obj, file)
