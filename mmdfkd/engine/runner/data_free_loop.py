"""Training loop for data-free distillation: the batches come from the synthesizer."""
import itertools
import time
import warnings
from typing import TYPE_CHECKING, Any

import torch
from mmengine import dist
from mmengine.logging import MessageHub
from mmengine.runner import BaseLoop
from torch import nn

from mmdfkd.models.teachers import QueryBudgetExceeded, TeacherUnavailableError
from mmdfkd.registry import LOOPS
from .stop_signals import StopSignals

if TYPE_CHECKING:
    from mmengine.runner import Runner


# Runtime-info keys of the message hub (saved in every checkpoint, restored on resume):
# seconds of training so far, counted across resumes, and the share of
# ``train_cfg.time_budget_s`` they make (only when a budget is set).
TRAIN_ELAPSED_KEY = 'train_elapsed_s'
BUDGET_FRACTION_KEY = 'time_budget_fraction'
# mmengine's copy of torch's warning for a scheduler stepped before its optimizer.
SCHEDULER_BEFORE_OPTIMIZER_WARNING = (r'Detected call of `scheduler\.step\(\)` before '
                                      r'`optimizer\.step\(\)`')


def resumed_train_elapsed_s(message_hub: MessageHub) -> float:
    """Seconds of training a resumed run already spent (0 for a fresh run)."""
    return float(message_hub.get_info(TRAIN_ELAPSED_KEY, 0.0))


def rank0_seconds(seconds: float) -> float:
    """``seconds`` as rank 0 measured them, on every process of a distributed run.

    Each process has its own clock, started at a slightly different moment, so a decision
    taken on it could differ between ranks: one rank would end training on the time budget
    (or validate at a ``TimedValidationHook`` mark) while the other waits for it in the next
    collective forever, and a budget-fitted learning rate would step the DDP replicas apart.
    Every clock-driven decision reads the same number instead. One process: ``seconds``.
    """
    if dist.get_world_size() == 1:
        return seconds
    value = torch.tensor([seconds], dtype=torch.float64)
    dist.broadcast(value, src=0)
    return float(value)


def non_finite_state(outputs: dict, model: nn.Module) -> list[str]:
    """What an iteration left NaN or infinite: its loss terms (the keys of ``outputs`` with
    ``loss`` in them) and the first such weight of ``model`` outside its teacher (parameters
    and buffers; the teacher is frozen). Agreed across processes: a problem one rank has
    counts on all, so they stop together."""
    problems = []
    for key, value in (outputs or {}).items():
        if 'loss' in key and isinstance(value, (torch.Tensor, float, int)):
            if isinstance(value, torch.Tensor):
                value = value.detach()
            flat = torch.as_tensor(value, dtype=torch.float64).flatten()
            if not bool(torch.isfinite(flat).all()):
                problems.append(f'{key}={float(flat[~torch.isfinite(flat)][0])}')
    teacher = getattr(model, 'teacher', None)
    frozen = ({id(t) for t in itertools.chain(teacher.parameters(), teacher.buffers())}
              if isinstance(teacher, nn.Module) else set())
    weights = [(name, t.detach()) for name, t in itertools.chain(model.named_parameters(),
                                                                 model.named_buffers())
               if t.is_floating_point() and id(t) not in frozen]
    if weights:
        # One sum per tensor, checked at once: a NaN or infinity anywhere makes its sum one.
        device = weights[0][1].device
        sums = torch.stack([t.float().sum().to(device) for _, t in weights])
        if not bool(torch.isfinite(sums).all()):
            problems.append(next(name for name, t in weights if not bool(
                torch.isfinite(t).all())))
    if dist.get_world_size() > 1:
        flag = torch.tensor([float(bool(problems))])
        dist.all_reduce(flag, op='max')
        if float(flag) and not problems:
            problems = ['a loss or weight of another process']
    return problems


def resume_command() -> str:
    """How to continue this run, as the user started it (one process or several)."""
    world_size = dist.get_world_size()
    if world_size > 1:
        return f'tools/dist_train.sh CONFIG {world_size} --resume'
    return 'tools/train.py CONFIG --resume'


class _SyntheticDataset:
    """Stands in for ``dataloader.dataset`` where mmengine reads the class names."""

    def __init__(self, metainfo: dict) -> None:
        self.metainfo = metainfo


class SyntheticBatchSource:
    """What the runner sees as the train dataloader: one entry per iteration.

    The images themselves are made inside ``model.train_step`` by the synthesizer; this object
    only gives hooks the length (``max_iters``) and the class names they expect.
    """

    def __init__(self, num_iters: int, metainfo: dict) -> None:
        self.num_iters = num_iters
        self.dataset = _SyntheticDataset(metainfo)
        self.batch_size = None

    def __len__(self) -> int:
        return self.num_iters


@LOOPS.register_module()
class DataFreeTrainLoop(BaseLoop):
    """Iteration-based loop that needs no training dataset.

    It calls ``model.train_step(iteration, optim_wrapper)`` ``max_iters`` times with the usual
    hooks (logging, checkpoints, param schedulers), validates every ``val_interval``
    iterations and always after the last one.

    Args:
        runner (Runner): The runner.
        dataloader: Ignored; must be ``None`` (``train_dataloader`` is not set for data-free
            training).
        max_iters (int): Total iterations.
        val_interval (int): Validation interval in iterations.
        val_begin (int): First iteration that may validate.
        time_budget_s (float, optional): Wall-clock budget of the whole training, validations
            included and counted across resumes (a resumed run gets what its checkpoint had
            left, not a new budget); when spent, the current iteration becomes the last one
            (checkpoint saved, final validation run). A teacher's query budget
            (``QueryBudgetExceeded``) ends training the same way. The elapsed seconds and
            the spent share of the budget are published in the message hub's runtime info
            (``train_elapsed_s``, ``time_budget_fraction``), which is how
            ``BudgetCosineAnnealingLR`` fits its schedule to the budget.
            SIGINT / SIGTERM (Ctrl-C, a scheduler pre-empting the job) also end training at
            the end of the iteration under way, with its checkpoint but without the final
            validation; ``stopped_by_signal`` then holds the signal number and
            ``tools/train.py`` exits with 128 + it.
            A remote teacher that stays down (``TeacherUnavailableError``) ends training the
            same way: the iteration under way is the last, its checkpoint keeps every query
            bought so far, and the error is raised after it (no final validation), so the
            run continues with ``--resume`` once the server is back.
            An iteration that leaves a loss term or a weight NaN or infinite raises
            ``FloatingPointError`` (:func:`non_finite_state`) before its hooks, so no
            checkpoint of the spoilt weights is saved.
        metainfo (dict, optional): Dataset meta (``classes``) for the visualizer/checkpoint;
            defaults to the validation dataset's.
    """

    def __init__(self, runner: 'Runner', dataloader: Any = None, max_iters: int = 1000,
                 val_interval: int = 1000, val_begin: int = 1,
                 time_budget_s: float | None = None, metainfo: dict | None = None) -> None:
        if dataloader is not None:
            raise ValueError('DataFreeTrainLoop trains without a dataset: remove '
                             '`train_dataloader` from the config (the synthesizer makes the '
                             'batches) and set `runner_type = "DataFreeRunner"`.')
        self._runner = runner
        if int(max_iters) != max_iters or max_iters < 1:
            raise ValueError(f'train_cfg.max_iters must be a positive integer, got {max_iters}')
        self._max_iters = int(max_iters)
        self._iter = 0
        self._epoch = 0
        if int(val_interval) != val_interval or val_interval < 1:
            raise ValueError('train_cfg.val_interval must be a positive integer (validate every '
                             f'that many iterations; the last iteration always validates), got '
                             f'{val_interval}; use --no-validate to train without validation')
        self.val_interval = int(val_interval)
        self.val_begin = val_begin
        if time_budget_s is not None and not time_budget_s > 0:
            raise ValueError('train_cfg.time_budget_s must be a positive number of seconds '
                             f'(or None for no budget), got {time_budget_s}')
        self.time_budget_s = time_budget_s
        self.stop_training = False
        self.stopped_by_signal: int | None = None
        self.teacher_error: TeacherUnavailableError | None = None
        self._stop_signals: StopSignals | None = None
        if metainfo is None:
            metainfo = self._val_metainfo(runner)
        self.dataloader = SyntheticBatchSource(self._max_iters, metainfo)
        runner.visualizer.dataset_meta = metainfo
        model = getattr(runner.model, 'module', runner.model)
        if hasattr(model, 'set_work_dir'):
            # Before any resume, so a synthetic pool restored from a checkpoint finds its files.
            model.set_work_dir(runner.work_dir)

    @staticmethod
    def _val_metainfo(runner: 'Runner') -> dict:
        cfg = getattr(runner, '_val_dataloader', None)
        dataset = getattr(cfg, 'dataset', None)
        if dataset is not None and hasattr(dataset, 'metainfo'):
            return dict(dataset.metainfo)
        if isinstance(cfg, dict) and isinstance(cfg.get('dataset'), dict):
            meta = cfg['dataset'].get('metainfo')
            if meta:
                return dict(meta)
            from mmdfkd.registry import DATASETS
            dataset_cls = DATASETS.get(cfg['dataset'].get('type', ''))
            if dataset_cls is not None and hasattr(dataset_cls, 'METAINFO'):
                return dict(dataset_cls.METAINFO)
        return {}

    @property
    def max_epochs(self) -> int:
        """Always 1: a data-free run is one epoch of ``max_iters`` iterations."""
        return 1

    @property
    def max_iters(self) -> int:
        """Iterations to train (lowered when a budget or a stop signal ends the run early)."""
        return self._max_iters

    @property
    def epoch(self) -> int:
        """Always 0, as for mmengine's IterBasedTrainLoop."""
        return self._epoch

    @property
    def iter(self) -> int:
        """Iterations done so far."""
        return self._iter

    def run(self) -> nn.Module:
        """Train until ``max_iters``, a budget or a stop signal, validating every
        ``val_interval`` iterations and at the end; a resumed run continues its clock.
        """
        self.runner.call_hook('before_train')
        self.runner.call_hook('before_train_epoch')
        spent = resumed_train_elapsed_s(self.runner.message_hub)
        if spent:
            budget = (f' of train_cfg.time_budget_s={self.time_budget_s:g}'
                      if self.time_budget_s is not None else '')
            self.runner.logger.info(f'Resuming at iteration {self._iter} with {spent:.0f} s'
                                    f'{budget} already spent.')
        if (self.time_budget_s is not None and spent >= self.time_budget_s
                and self._iter < self._max_iters):
            self.runner.logger.warning(
                f'train_cfg.time_budget_s={self.time_budget_s:g} was already spent before this '
                f'resume ({spent:.0f} s); nothing to train. Raise train_cfg.time_budget_s to '
                'continue the run.')
            self.stop_training = True
        if hasattr(self.runner, 'warn_unfinished_schedules'):
            self.runner.warn_unfinished_schedules(self._max_iters, self.time_budget_s)
        # The clock continues where the checkpoint left it.
        start = time.perf_counter() - spent
        with StopSignals(self.runner.logger) as self._stop_signals:
            while self._iter < self._max_iters and not self.stop_training:
                self.runner.model.train()
                self.run_iter(start)
                if self.stopped_by_signal is not None or self.teacher_error is not None:
                    break  # checkpoint saved by the iteration's hooks; no validation
                if (self.runner.val_loop is not None and self._iter >= self.val_begin
                        and (self._iter % self.val_interval == 0
                             or self._iter == self._max_iters)):
                    self.runner.val_loop.run()
        self._stop_signals = None
        self.runner.call_hook('after_train_epoch')
        self.runner.call_hook('after_train')
        if self.teacher_error is not None:
            raise self.teacher_error
        return self.runner.model

    def run_iter(self, start: float) -> None:
        """One ``train_step`` of the model and its hooks, ``start`` the run's clock origin.

        A spent query budget, a teacher that stays down, a spent time budget or a stop signal
        make this iteration the last (its checkpoint is saved); NaN or infinite values stop
        the run before the hooks can save them.
        """
        data_batch = dict(iteration=self._iter)
        self.runner.call_hook('before_train_iter', batch_idx=self._iter, data_batch=data_batch)
        try:
            outputs = self.runner.model.train_step(data_batch,
                                                   optim_wrapper=self.runner.optim_wrapper)
        except QueryBudgetExceeded as e:
            # Nothing was sent for the refused batch; end here like the time budget does
            # (checkpoint with the exact count, final validation) instead of overspending.
            self.runner.logger.warning(f'{e} Stopping at iteration {self._iter + 1} '
                                       f'(max_iters {self._max_iters}); checkpoint saved.')
            self._max_iters = self._iter + 1
            self.dataloader.num_iters = self._max_iters
            outputs = {}
        except TeacherUnavailableError as e:
            # Save what was bought so far instead of losing everything since the last
            # checkpoint: this iteration becomes the last, then the error goes on up.
            self.runner.logger.error(
                f'{e} Stopping at iteration {self._iter + 1} (max_iters {self._max_iters}) '
                'with a checkpoint that keeps every teacher query bought so far; continue '
                f'with `{resume_command()}` once the teacher answers again.')
            self.teacher_error = e
            self._max_iters = self._iter + 1
            self.dataloader.num_iters = self._max_iters
            outputs = {}
        problems = non_finite_state(outputs, getattr(self.runner.model, 'module',
                                                      self.runner.model))
        if problems:
            # Raised before the iteration's hooks: no checkpoint of the spoilt weights is
            # written, and CheckpointHook's max_keep_ckpts (which deletes the oldest one
            # before it saves) deletes no good one for them.
            raise FloatingPointError(
                f'iteration {self._iter + 1} left NaN or infinite values in '
                f'{", ".join(problems)}: an update diverged, so training stops here without '
                'saving it. Lower the learning rate that diverged (optim_wrapper.student / '
                'optim_wrapper.synthesizer optimizer.lr) or the weight of the loss term that '
                'grew, then continue from the latest checkpoint, if the run saved one, with '
                f'`{resume_command()}`.')
        elapsed = rank0_seconds(time.perf_counter() - start)
        # Published before the hooks run, so the checkpoint of this iteration and the
        # parameter schedulers stepped after it see the same clock.
        self.runner.message_hub.update_info(TRAIN_ELAPSED_KEY, elapsed)
        # 0 without a budget, also when a budgeted run is resumed without one.
        self.runner.message_hub.update_info(
            BUDGET_FRACTION_KEY,
            elapsed / self.time_budget_s if self.time_budget_s is not None else 0.0)
        if (self.time_budget_s is not None and elapsed >= self.time_budget_s
                and self._iter + 1 < self._max_iters):
            # Make this the last iteration *before* the hooks run, so CheckpointHook's
            # save_last and the final validation treat it as the end of training.
            self.runner.logger.info(
                f'train_cfg.time_budget_s={self.time_budget_s} reached at iteration '
                f'{self._iter + 1}; stopping (max_iters {self._max_iters} -> {self._iter + 1}).')
            self._max_iters = self._iter + 1
            self.dataloader.num_iters = self._max_iters
        if (self._stop_signals is not None and self._iter + 1 < self._max_iters
                and self._stop_signals.requested()):
            # Like the budgets: this iteration becomes the last, so CheckpointHook saves it.
            self.stopped_by_signal = self._stop_signals.signum
            self.runner.logger.warning(
                f'stopping at iteration {self._iter + 1} (max_iters {self._max_iters}); its '
                f'checkpoint is saved, continue with `{resume_command()}`.')
            self._max_iters = self._iter + 1
            self.dataloader.num_iters = self._max_iters
        with warnings.catch_warnings():
            # Parts of a data-free model legitimately idle while their schedules run over the
            # whole run's iterations: the student during `warmup_iters` (Fast-DFKD, DiffDFKD),
            # DIP-KD's primer and student before their phases. The schedulers are indexed by
            # the iteration, so no value is skipped, and torch's warning that one will be
            # (printed once per run) is wrong here.
            warnings.filterwarnings('ignore', message=SCHEDULER_BEFORE_OPTIMIZER_WARNING)
            self.runner.call_hook('after_train_iter', batch_idx=self._iter,
                                  data_batch=data_batch, outputs=outputs)
        self._iter += 1
