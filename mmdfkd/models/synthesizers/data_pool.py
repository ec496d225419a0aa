"""Disk-backed pool of synthetic images shared by pool-based methods."""
import os
import os.path as osp
import random
import re
from collections import OrderedDict
from collections.abc import Iterator

import torch
from mmengine import dist
from mmengine.logging import print_log
from torch import nn

from mmdfkd.registry import MODELS
from mmdfkd.utils.atomic_save import save_whole

# A pool is filled only by its synthesizer's synthesize(); the usual way to reach an empty one
# is a config that never calls it.
EMPTY_POOL = ('the synthetic data pool is empty: nothing has been synthesised before the '
              "student's first batch. Pool methods add images only in their synthesis steps: "
              'model.synthesizer_steps must be >= 1 (0 trains the student only on a pool '
              'restored by resuming a run whose pool holds images).')


@MODELS.register_module()
class SyntheticDataPool(nn.Module):
    """Synthetic images with the teacher's answers on them (logits from a white-box teacher,
    or top-1 labels from a black-box one), one ``.pt`` file per added batch.

    Files live under ``root`` (``<work_dir>/synthetic_pool`` when the runner sets it), so the
    pool can grow beyond memory; an LRU cache keeps recently used files in memory up to
    ``cache_mb``. Uniform sampling touches most files of the pool at every step, so a cache
    that holds the whole pool when it fits (a 60K-image Fashion-MNIST pool is ~125 MB) saves
    a disk read per file per step. The index (file names and sizes) is the module's *extra
    state*, so it is saved in every checkpoint and restored on resume together with the model.

    A batch the cap drops is deleted at once unless the latest checkpoint's index names it:
    then its file stays until the next checkpoint is on disk, so a run that crashes between
    checkpoints resumes with the whole pool the checkpoint saved, not with what eviction
    left of it (the disk then holds at most the pool plus the checkpoint's batches). In a
    distributed run this holds for rank 0, which saves the checkpoints; the other processes
    delete at once and fall back to rank 0's files for the ones they lack on resume.

    Args:
        max_images (int): Cap on the pool size; beyond it whole batches are dropped.
        policy (str): Which batch to drop when full: ``'fifo'`` (oldest) or ``'random'``.
        root (str, optional): Folder for the files; normally set by the runner.
        cache_batches (int, optional): Most batch files kept in memory (``None``: no count
            limit, only ``cache_mb``).
        cache_mb (float): Memory budget of the cache in MiB.
    """

    POLICIES = ('fifo', 'random')

    def __init__(self, max_images: int = 50000, policy: str = 'fifo', root: str | None = None,
                 cache_batches: int | None = None, cache_mb: float = 512.0) -> None:
        super().__init__()
        if policy not in self.POLICIES:
            raise ValueError(f"SyntheticDataPool policy must be one of {self.POLICIES}, got "
                             f"'{policy}'")
        if max_images < 1:
            raise ValueError(f'SyntheticDataPool max_images must be >= 1, got {max_images}')
        if (cache_batches is not None and cache_batches < 1) or cache_mb <= 0:
            raise ValueError('SyntheticDataPool cache_batches must be >= 1 (or None) and '
                             f'cache_mb > 0; got {cache_batches} and {cache_mb}')
        self.max_images, self.policy = max_images, policy
        self.cache_batches, self.cache_bytes = cache_batches, int(cache_mb * 2**20)
        self.root = root
        self._batches: list[tuple[str, int]] = []  # (file name, number of images)
        self._next_id = 0
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._cached_bytes = 0
        self._dirty: set[str] = set()  # cached records changed since they were written
        # Batch files named by the latest checkpoint's index (see get_extra_state); dropped
        # ones wait in _kept_for_checkpoint until the next index is taken, then in
        # _kept_until_saved until the checkpoint that index went into is on disk.
        self._checkpointed: set[str] = set()
        self._kept_for_checkpoint: list[str] = []
        self._kept_until_saved: list[str] = []

    def set_root(self, root: str) -> None:
        """Folder the pool writes to (created if missing)."""
        self.root = root
        os.makedirs(root, exist_ok=True)

    def __len__(self) -> int:
        return sum(n for _, n in self._batches)

    def _path(self, name: str) -> str:
        if self.root is None:
            raise RuntimeError('SyntheticDataPool has no root folder; the runner sets it to '
                               '<work_dir>/synthetic_pool (or call set_root).')
        return osp.join(self.root, name)

    def add(self, images: torch.Tensor, logits: torch.Tensor | None = None,
            labels: torch.Tensor | None = None) -> None:
        """Store a batch (images in float16 on disk) with the teacher's ``logits`` and/or its
        top-1 ``labels``."""
        if logits is None and labels is None:
            raise ValueError('SyntheticDataPool.add needs the teacher logits or labels')
        if self.root is None:
            self.set_root(osp.join('work_dirs', 'synthetic_pool'))
        # The checkpoint saved after the latest index was taken is on disk by now (saving
        # finishes before training goes on), so no checkpoint to resume from needs these.
        self._remove_files(self._kept_until_saved)
        self._kept_until_saved = []
        name = f'batch_r{dist.get_rank()}_{self._next_id:07d}.pt'
        self._next_id += 1
        record = {'images': images.detach().half().cpu()}
        if logits is not None:
            record['logits'] = logits.detach().half().cpu()
        if labels is not None:
            record['labels'] = labels.detach().long().cpu()
        self._save(record, name)
        self._batches.append((name, images.size(0)))
        self._remember(name, record)
        while len(self) > self.max_images and len(self._batches) > 1:
            # Drawn from the batch count, not the global RNG: every process of a distributed
            # run drops the same batch index (so a resumed process finds its own files under
            # the names rank 0 checkpointed), and a resumed run drops what the first would.
            idx = (0 if self.policy == 'fifo' else
                   random.Random(self._next_id).randrange(len(self._batches) - 1))
            dropped, _ = self._batches.pop(idx)
            self._forget(dropped)
            self._dirty.discard(dropped)
            if dropped in self._checkpointed:  # a resume from that checkpoint reads it
                self._kept_for_checkpoint.append(dropped)
            else:
                self._remove_files([dropped])

    def _save(self, record: dict, name: str) -> None:
        # Whole or not at all: the pool index never names a truncated file, and a full disk
        # is named as such (torch's own error on it is an "enforce fail" about zip offsets).
        save_whole(record, self._path(name), 'synthetic pool batch',
                   'Free space (or lower model.synthesizer.pool.max_images), then continue '
                   'the run with --resume: its latest checkpoint and the pool files it names '
                   'are complete.')

    def _remove_files(self, names: list[str]) -> None:
        for name in names:
            if osp.isfile(self._path(name)):
                os.remove(self._path(name))

    @staticmethod
    def _nbytes(record: dict) -> int:
        return sum(v.numel() * v.element_size() for v in record.values())

    def _forget(self, name: str) -> None:
        record = self._cache.pop(name, None)
        if record is not None:
            self._cached_bytes -= self._nbytes(record)

    def _remember(self, name: str, record: dict) -> None:
        self._forget(name)
        self._cache[name] = record
        self._cached_bytes += self._nbytes(record)
        while len(self._cache) > 1 and (
                self._cached_bytes > self.cache_bytes or
                self.cache_batches is not None and len(self._cache) > self.cache_batches):
            evicted = next(iter(self._cache))
            old = self._cache[evicted]
            self._forget(evicted)
            if evicted in self._dirty:
                self._dirty.discard(evicted)
                self._write_back(evicted, old)

    def _write_back(self, name: str, record: dict) -> str:
        """Write a changed record; returns the name it is stored under. A file the latest
        checkpoint names is not overwritten: the record goes to a new file in its place in
        the index, and the old one is kept for that checkpoint like a dropped batch."""
        if name not in self._checkpointed:
            self._save(record, name)
            return name
        new = f'batch_r{dist.get_rank()}_{self._next_id:07d}.pt'
        self._next_id += 1
        self._save(record, new)
        self._batches = [(new if b == name else b, n) for b, n in self._batches]
        self._kept_for_checkpoint.append(name)
        return new

    def flush(self) -> None:
        """Write records changed by :meth:`update_images` to disk (done on every checkpoint
        save and when a changed record leaves the cache)."""
        for name in sorted(self._dirty):
            if name in self._cache:
                new = self._write_back(name, self._cache[name])
                if new != name:
                    self._cache[new] = self._cache.pop(name)
        self._dirty.clear()

    def _load(self, name: str) -> dict:
        if name in self._cache:
            self._cache.move_to_end(name)  # most recently used
        else:
            self._remember(name, torch.load(self._path(name), map_location='cpu',
                                            weights_only=True))
        return self._cache[name]

    def sample(self, n: int, device: torch.device | str = 'cpu'
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images (float32) and their stored teacher logits, drawn uniformly."""
        total = len(self)
        if total == 0:
            raise RuntimeError(EMPTY_POOL)
        picks = sorted(random.randrange(total) for _ in range(n))
        images, logits = [], []
        offset, k = 0, 0
        for name, count in self._batches:
            local = []
            while k < len(picks) and picks[k] < offset + count:
                local.append(picks[k] - offset)
                k += 1
            if local:
                record = self._load(name)
                idx = torch.tensor(local)
                images.append(record['images'][idx])
                logits.append(record['logits'][idx])
            offset += count
        return (torch.cat(images).float().to(device), torch.cat(logits).float().to(device))

    def iter_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield every stored ``(images, labels)`` batch (for export); labels are the stored
        top-1 labels, or the argmax of the stored logits."""
        self.flush()
        for name, _ in self._batches:
            record = self._load(name)
            labels = record.get('labels')
            yield record['images'].float(), (labels if labels is not None else
                                             record['logits'].float().argmax(1))

    def labels(self) -> torch.Tensor:
        """Top-1 label of every pooled image, in pool order."""
        out = []
        for name, _ in self._batches:
            record = self._load(name)
            out.append(record['labels'] if 'labels' in record else
                       record['logits'].float().argmax(1))
        return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)

    def _locate(self, index: torch.Tensor) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
        """Group global positions by batch file: ``(name, positions in index, local rows)``."""
        starts, offset = [], 0
        for _, count in self._batches:
            starts.append(offset)
            offset += count
        starts_t = torch.tensor(starts)
        which = torch.bucketize(index, starts_t, right=True) - 1
        groups = []
        for b in which.unique().tolist():
            sel = (which == b).nonzero().flatten()
            groups.append((self._batches[b][0], sel, index[sel] - starts[b]))
        return groups

    def sample_index(self, n: int, balanced: bool = False) -> torch.Tensor:
        """``n`` global positions drawn with replacement: uniformly, or (``balanced``) with
        every class equally likely according to the stored labels."""
        total = len(self)
        if total == 0:
            raise RuntimeError(EMPTY_POOL)
        if not balanced:
            return torch.randint(total, (n, ))
        labels = self.labels()
        weights = 1.0 / torch.bincount(labels).float()[labels]
        return torch.multinomial(weights, n, replacement=True)

    def gather(self, index: torch.Tensor, device: torch.device | str = 'cpu') -> dict:
        """Images (float32) and labels at global positions ``index`` (``0 <= i < len``)."""
        index = index.long().cpu()
        images = torch.empty(index.numel(), *self._load(self._batches[0][0])['images'].shape[1:])
        labels = torch.empty(index.numel(), dtype=torch.long)
        for name, sel, rows in self._locate(index):
            record = self._load(name)
            images[sel] = record['images'][rows].float()
            labels[sel] = (record['labels'][rows] if 'labels' in record else
                           record['logits'][rows].float().argmax(1))
        return {'images': images.to(device), 'labels': labels.to(device), 'index': index}

    def update_images(self, index: torch.Tensor, images: torch.Tensor) -> None:
        """Overwrite the images at global positions ``index`` (e.g. after refining them);
        their stored teacher answers are kept. Changed files are written lazily
        (:meth:`flush`), so refining a few images of many files stays cheap; a changed file
        that the latest checkpoint names is written under a new name, so a resume from that
        checkpoint still reads the images it saved."""
        index = index.long().cpu()
        images = images.detach().half().cpu()
        for name, sel, rows in self._locate(index):
            record = self._load(name)
            record['images'][rows] = images[sel]
            self._dirty.add(name)

    def _own_file(self, name: str) -> str:
        """The name of this process's copy of a checkpointed batch file.

        Only rank 0 writes checkpoints, so a resumed process of a distributed run gets rank
        0's index (``batch_r0_<id>.pt``). The processes add and drop batches in step, so its
        own file of the same id is used when it is there; otherwise (e.g. a run resumed with
        more processes than it had) the saved one is."""
        own = re.sub(r'^batch_r\d+_', f'batch_r{dist.get_rank()}_', name)
        if own != name and self.root is not None and osp.isfile(osp.join(self.root, own)):
            return own
        return name

    # Saved in checkpoints as part of the model's state dict.
    def get_extra_state(self) -> dict:
        """The pool's index for the checkpoint: its batch files with their sizes, the next file
        id and the folder. Flushes pending writes first, and the files the cap dropped since
        the last checkpoint are deleted only at the next add, once this checkpoint is written.
        """
        self.flush()  # the checkpoint's index must describe files that are up to date
        # The files the previous index named and the cap has dropped since are still the
        # latest checkpoint's on disk until this one is written: delete them at the next add.
        self._remove_files(self._kept_until_saved)
        self._kept_until_saved, self._kept_for_checkpoint = self._kept_for_checkpoint, []
        self._checkpointed = {name for name, _ in self._batches}
        return {'batches': list(self._batches), 'next_id': self._next_id, 'root': self.root}

    def set_extra_state(self, state: dict) -> None:
        """Restore the index a checkpoint saved (the files stay on disk in ``root``); each
        process reads its own files where they are there.
        """
        self._batches = [tuple(b) for b in state['batches']]
        self._next_id = state['next_id']
        if self.root is None:
            self.root = state.get('root')
        self._batches = [(self._own_file(name), n) for name, n in self._batches]
        self._cache.clear()
        self._cached_bytes = 0
        missing = [n for n, _ in self._batches
                   if self.root is not None and not osp.isfile(osp.join(self.root, n))]
        if missing:
            print_log(f'SyntheticDataPool: {len(missing)} of {len(self._batches)} batch files '
                      f'are missing from {self.root}; they are dropped from the pool.',
                      logger='current', level=30)
            self._batches = [b for b in self._batches if b[0] not in missing]
        # Only rank 0 takes indices (it alone saves checkpoints), so only it defers deletes.
        self._checkpointed = ({name for name, _ in self._batches} if dist.get_rank() == 0
                              else set())
        self._kept_for_checkpoint, self._kept_until_saved = [], []
