"""Teacher wrappers: what a distillation method may see of its teacher.

Three access levels, ordered from least to most:

* ``hard-label``: the teacher answers each image with its top-1 class, nothing else;
* ``soft-label``: class probabilities, computed without autograd;
* ``white-box``: the model itself (weights, features, gradients, BN statistics).

Every wrapper answers :meth:`BaseTeacher.query_labels` (any level can give a top-1 label);
:meth:`BaseTeacher.query_probs` needs soft-label access or more. All queries go through one
accounting path: every image sent to the teacher counts, an optional ``query_budget`` refuses
to overspend (:class:`QueryBudgetExceeded`, which the training loop turns into a clean stop),
and answers for images asked before are served from a cache instead of being bought again.
The count, the cache hits and the cache itself are buffers / extra state, so checkpoints keep
them and resume continues the count exactly.
"""
import hashlib

import torch
from mmengine import dist
from torch import nn

from .remote import TeacherUnavailableError

ACCESS_LEVELS = ('hard-label', 'soft-label', 'white-box')


class QueryBudgetExceeded(RuntimeError):
    """A query would take the teacher past its ``query_budget``; nothing was sent."""


class TeacherAccessError(ValueError):
    """A method needs more access to the teacher than its wrapper gives."""


def access_rank(access: str) -> int:
    """The position of ``access`` in ``ACCESS_LEVELS``, from the least to the most access."""
    if access not in ACCESS_LEVELS:
        raise ValueError(f"unknown teacher access level '{access}'; one of {ACCESS_LEVELS}")
    return ACCESS_LEVELS.index(access)


def require_access(teacher: 'BaseTeacher', needed: str, method: str) -> None:
    """Raise :class:`TeacherAccessError` unless ``teacher`` gives at least ``needed``."""
    if access_rank(teacher.access) < access_rank(needed):
        raise TeacherAccessError(
            f'{method} needs a {needed} teacher; got {teacher.access} '
            f'({type(teacher).__name__}). Give model.teacher a wrapper with {needed} access '
            f'({_WRAPPER_OF[needed]}), or pick a method that works with {teacher.access} '
            'access (DIPKD works with hard labels).')


_WRAPPER_OF = {'hard-label': 'HardLabelTeacher', 'soft-label': 'SoftLabelTeacher',
               'white-box': "WhiteBoxTeacher or a plain dict(type='ImageClassifier', ...) "
                            'with teacher_ckpt'}


def image_digests(images: torch.Tensor) -> list[bytes]:
    """SHA-1 of every image's float32 bytes: the cache key of a query."""
    flat = images.detach().to('cpu', torch.float32).contiguous().view(images.size(0), -1)
    array = flat.numpy()
    return [hashlib.sha1(row.tobytes()).digest() for row in array]


class BaseTeacher(nn.Module):
    """Accounting shared by every teacher wrapper.

    Subclasses set :attr:`access` and implement :meth:`_answer`, which returns what the
    access level allows for a batch the cache could not answer (labels ``(N,)`` for
    hard-label, probabilities ``(N, C)`` for the others).

    Args:
        num_classes (int): Number of classes the teacher predicts (answers are checked).
        query_budget (int, optional): Most images that may ever be sent to the teacher.
        cache (bool): Serve repeated images from the cache (cache hits cost nothing).
    """

    access: str = 'hard-label'

    def __init__(self, num_classes: int, query_budget: int | None = None,
                 cache: bool = True) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f'teacher num_classes must be >= 2, got {num_classes}')
        if query_budget is not None and query_budget < 1:
            raise ValueError(f'model.teacher.query_budget must be a positive number of images '
                             f'(or None for no budget), got {query_budget}')
        if query_budget is not None and dist.get_world_size() > 1:
            raise ValueError(
                f'model.teacher.query_budget caps one process\'s queries, and this run has '
                f'{dist.get_world_size()} processes that query the teacher apart: run a '
                'budgeted teacher in one process (python tools/train.py CONFIG), or set '
                'model.teacher.query_budget=None.')
        self.num_classes = num_classes
        self.query_budget = query_budget
        self.use_cache = cache
        self.register_buffer('queries', torch.zeros((), dtype=torch.long))
        self.register_buffer('cache_hits', torch.zeros((), dtype=torch.long))
        self._cache: dict[bytes, torch.Tensor] = {}

    # ------------------------------------------------------------------ accounting
    @property
    def remaining_budget(self) -> int | None:
        """Images that may still be sent (``None`` without a budget)."""
        if self.query_budget is None:
            return None
        return max(self.query_budget - int(self.queries), 0)

    def _answer(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _format_answer(self, answer: torch.Tensor) -> torch.Tensor:
        """What :meth:`_answer` makes of its source's raw answer (used for the answers a
        failing remote call did get)."""
        return answer

    @torch.no_grad()
    def _query(self, images: torch.Tensor) -> torch.Tensor:
        """Answers for ``images`` (labels or probabilities), through cache and budget."""
        if images.dim() != 4:
            raise ValueError(f'teacher queries take a batch (N, C, H, W); got shape '
                             f'{tuple(images.shape)}')
        n = images.size(0)
        keys = image_digests(images) if self.use_cache else [None] * n
        missing = [i for i, k in enumerate(keys) if k is None or k not in self._cache]
        # Duplicates inside one batch are bought once.
        unique: dict[bytes | None, int] = {}
        to_buy = []
        for i in missing:
            if keys[i] is None or keys[i] not in unique:
                unique.setdefault(keys[i], i)
                to_buy.append(i)
        if self.query_budget is not None and int(self.queries) + len(to_buy) > self.query_budget:
            raise QueryBudgetExceeded(
                f'teacher query budget reached: {int(self.queries)} of {self.query_budget} '
                f'images spent, this batch needs {len(to_buy)} more (raise '
                'model.teacher.query_budget to continue).')
        answers: list[torch.Tensor | None] = [None] * n
        if to_buy:
            try:
                bought = self._answer(images[to_buy]).detach()
            except TeacherUnavailableError as e:
                # The server answered (and counted) the leading requests before it went
                # down: count and cache those images too, so the count that a checkpoint
                # keeps matches what was spent and a resume does not buy them again.
                if e.answered is not None and len(e.answered):
                    partial = self._format_answer(e.answered).detach()
                    self._check_answer(partial, len(partial))
                    self._keep(to_buy[:len(partial)], keys, partial, answers)
                raise
            self._check_answer(bought, len(to_buy))
            self._keep(to_buy, keys, bought, answers)
        self.cache_hits += n - len(to_buy)
        for i, k in enumerate(keys):
            if answers[i] is None:
                answers[i] = self._cache[k]
        return torch.stack(answers).to(images.device)

    def _keep(self, bought_at: list[int], keys: list, bought: torch.Tensor,
              answers: list) -> None:
        """Count the images at ``bought_at`` as queries and cache their answers."""
        self.queries += len(bought_at)
        for j, i in enumerate(bought_at):
            answers[i] = bought[j].cpu()
            if keys[i] is not None:
                self._cache[keys[i]] = answers[i]

    def _check_answer(self, answer: torch.Tensor, n: int) -> None:
        if answer.dim() == 1:
            if answer.shape[0] != n or answer.dtype not in (torch.int64, torch.int32,
                                                            torch.int16, torch.uint8):
                raise ValueError(f'the teacher answered {tuple(answer.shape)} {answer.dtype} '
                                 f'for {n} images; expected {n} integer class labels')
            if answer.numel() and (int(answer.min()) < 0 or int(answer.max()) >= self.num_classes):
                raise ValueError(f'the teacher answered labels outside [0, {self.num_classes}); '
                                 'check model.teacher.num_classes')
        elif answer.shape != (n, self.num_classes):
            raise ValueError(f'the teacher answered shape {tuple(answer.shape)} for {n} images; '
                             f'expected ({n}, {self.num_classes}) probabilities')

    # ------------------------------------------------------------------ public API
    def query_labels(self, images: torch.Tensor) -> torch.Tensor:
        """Top-1 class of every image (``(N,)`` long); available at every access level."""
        answer = self._query(images)
        return answer.long() if answer.dim() == 1 else answer.argmax(1)

    def query_probs(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``(N, C)``; needs soft-label access or more."""
        require_access(self, 'soft-label', 'query_probs')
        return self._query(images).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """What this access level returns: labels (hard-label) or probabilities."""
        return self.query_labels(images) if self.access == 'hard-label' else \
            self.query_probs(images)

    # The cache goes into checkpoints with the counters, so a resumed run re-buys nothing.
    def get_extra_state(self) -> dict:
        """The answer cache for the checkpoint: the images' 20-byte SHA-1 keys as a uint8
        (K, 20) tensor and the answers stacked.
        """
        if not self._cache:
            return {'keys': torch.zeros(0, 20, dtype=torch.uint8), 'answers': None}
        keys = torch.frombuffer(bytearray(b''.join(self._cache)), dtype=torch.uint8)
        keys = keys.view(-1, 20)
        return {'keys': keys, 'answers': torch.stack(list(self._cache.values()))}

    def set_extra_state(self, state: dict) -> None:
        """Restore the answer cache a checkpoint saved (kept on the CPU)."""
        self._cache = {}
        if state.get('answers') is None:
            return
        raw = state['keys'].cpu().numpy().tobytes()
        # The cache lives on the CPU (a GPU resume maps the checkpoint to the GPU).
        for i, answer in enumerate(state['answers'].cpu()):
            self._cache[raw[20 * i:20 * (i + 1)]] = answer

    def extra_repr(self) -> str:
        """Access level, class count and query budget, in the module's repr."""
        return (f'access={self.access}, num_classes={self.num_classes}, '
                f'query_budget={self.query_budget}')
