"""Disk-backed pool of synthetic images shared by pool-based methods."""
import os
import os.path as osp
import random
from collections import OrderedDict

import torch
from mmengine import dist
from mmengine.logging import print_log
from torch import nn

from mmdfkd.registry import MODELS


@MODELS.register_module()
class SyntheticDataPool(nn.Module):
    """Synthetic images and the teacher's logits on them, one ``.pt`` file per added batch.

    Files live under ``root`` (``<work_dir>/synthetic_pool`` when the runner sets it), so the
    pool can grow beyond memory; a small LRU cache keeps recently read files. The index (file
    names and sizes) is the module's *extra state*, so it is saved in every checkpoint and
    restored on resume together with the model.

    Args:
        max_images (int): Cap on the pool size; beyond it whole batches are dropped.
        policy (str): Which batch to drop when full: ``'fifo'`` (oldest) or ``'random'``.
        root (str, optional): Folder for the files; normally set by the runner.
        cache_batches (int): Batch files kept in memory.
    """

    POLICIES = ('fifo', 'random')

    def __init__(self, max_images: int = 50000, policy: str = 'fifo', root: str | None = None,
                 cache_batches: int = 16) -> None:
        super().__init__()
        if policy not in self.POLICIES:
            raise ValueError(f"SyntheticDataPool policy must be one of {self.POLICIES}, got "
                             f"'{policy}'")
        if max_images < 1:
            raise ValueError(f'SyntheticDataPool max_images must be >= 1, got {max_images}')
        self.max_images, self.policy, self.cache_batches = max_images, policy, cache_batches
        self.root = root
        self._batches: list[tuple[str, int]] = []  # (file name, number of images)
        self._next_id = 0
        self._cache: OrderedDict[str, dict] = OrderedDict()

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

    def add(self, images: torch.Tensor, logits: torch.Tensor) -> None:
        """Store a batch (kept in float16 on disk)."""
        if self.root is None:
            self.set_root(osp.join('work_dirs', 'synthetic_pool'))
        name = f'batch_r{dist.get_rank()}_{self._next_id:07d}.pt'
        self._next_id += 1
        record = {'images': images.detach().half().cpu(), 'logits': logits.detach().half().cpu()}
        torch.save(record, self._path(name))
        self._batches.append((name, images.size(0)))
        self._remember(name, record)
        while len(self) > self.max_images and len(self._batches) > 1:
            idx = 0 if self.policy == 'fifo' else random.randrange(len(self._batches) - 1)
            dropped, _ = self._batches.pop(idx)
            self._cache.pop(dropped, None)
            if osp.isfile(self._path(dropped)):
                os.remove(self._path(dropped))

    def _remember(self, name: str, record: dict) -> None:
        self._cache[name] = record
        self._cache.move_to_end(name)
        while len(self._cache) > self.cache_batches:
            self._cache.popitem(last=False)

    def _load(self, name: str) -> dict:
        if name not in self._cache:
            self._remember(name, torch.load(self._path(name), map_location='cpu',
                                            weights_only=True))
        return self._cache[name]

    def sample(self, n: int, device: torch.device | str = 'cpu'
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images (float32) and their stored teacher logits, drawn uniformly."""
        total = len(self)
        if total == 0:
            raise RuntimeError('SyntheticDataPool is empty: synthesize() before sample().')
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

    def iter_batches(self):
        """Yield every stored ``(images, logits)`` batch (for export)."""
        for name, _ in self._batches:
            record = self._load(name)
            yield record['images'].float(), record['logits'].float()

    # Saved in checkpoints as part of the model's state dict.
    def get_extra_state(self) -> dict:
        return {'batches': list(self._batches), 'next_id': self._next_id, 'root': self.root}

    def set_extra_state(self, state: dict) -> None:
        self._batches = [tuple(b) for b in state['batches']]
        self._next_id = state['next_id']
        if self.root is None:
            self.root = state.get('root')
        self._cache.clear()
        missing = [n for n, _ in self._batches
                   if self.root is not None and not osp.isfile(osp.join(self.root, n))]
        if missing:
            print_log(f'SyntheticDataPool: {len(missing)} of {len(self._batches)} batch files '
                      f'are missing from {self.root}; they are dropped from the pool.',
                      logger='current', level=30)
            self._batches = [b for b in self._batches if b[0] not in missing]
