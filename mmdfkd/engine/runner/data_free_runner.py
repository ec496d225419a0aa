"""Runner that accepts a training config without a training dataloader."""
import copy
import math
import os.path as osp
from typing import Any

import torch
from mmengine.config import Config
from mmengine.device import get_device
from mmengine.dist import master_only
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper, OptimWrapperDict
from mmengine.runner import Runner
from torch import nn

from mmdfkd.registry import MODEL_WRAPPERS, RUNNERS
from mmdfkd.utils.atomic_save import partial_path


# What a resumed scheduler takes from its checkpoint: where it is in its schedule (and its
# base values, which follow the optimizer's learning rates); the schedule is the config's.
SCHEDULER_POSITION_KEYS = ('last_step', '_global_step', '_last_value', 'base_values',
                           'verbose')


@RUNNERS.register_module()
class DataFreeRunner(Runner):
    """mmengine ``Runner`` for data-free training.

    mmengine requires ``train_dataloader``, ``train_cfg`` and ``optim_wrapper`` together; a
    data-free method has no training data, so this runner lets ``train_dataloader`` be absent
    when ``train_cfg`` names a loop that makes its own batches (``DataFreeTrainLoop``).
    """

    def __init__(self, *args, train_dataloader: Any = None, train_cfg: dict | None = None,
                 optim_wrapper: Any = None, **kwargs) -> None:
        data_free = train_dataloader is None and train_cfg is not None
        kwargs['custom_hooks'] = with_random_state_hook(kwargs.get('custom_hooks'))
        if data_free and 'type' not in train_cfg:
            raise ValueError("train_cfg must name a data-free loop, e.g. train_cfg=dict("
                             "type='DataFreeTrainLoop', max_iters=..., val_interval=...), "
                             'when there is no train_dataloader.')
        # A placeholder gets past mmengine's all-or-none check; it is removed right after,
        # so the loop is built with dataloader=None.
        super().__init__(*args, train_dataloader={} if data_free else train_dataloader,
                         train_cfg=train_cfg, optim_wrapper=optim_wrapper, **kwargs)
        if data_free:
            self._train_dataloader = None

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'DataFreeRunner':
        """Build from a config; the top-level ``teacher_ckpt`` variable (what
        ``--cfg-options teacher_ckpt=PATH`` changes) is copied into ``model.teacher_ckpt``, or
        into ``model.teacher.checkpoint`` for a teacher wrapper built from a local model."""
        propagate_teacher_ckpt(cfg)
        return super().from_cfg(cfg)

    def scale_lr(self, optim_wrapper: OptimWrapper | OptimWrapperDict,
                 auto_scale_lr: dict | None = None) -> None:
        """mmengine's linear LR scaling (``--auto-scale-lr``) with the student's batch size
        standing in for the training dataloader's, which a data-free run does not have.

        Every optimizer is scaled, as mmengine does for an ``OptimWrapperDict``."""
        if self._train_dataloader is not None or not (auto_scale_lr or {}).get('enable'):
            return super().scale_lr(optim_wrapper, auto_scale_lr)
        if 'base_batch_size' not in auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size, the '
                             'student batch size the config\'s learning rates are meant for, '
                             'e.g. --cfg-options auto_scale_lr.base_batch_size=256')
        model = self.model.module if is_model_wrapper(self.model) else self.model
        batch_size = getattr(model, 'student_batch_size', None) or model.batch_size
        real_bs, base_bs = self.world_size * batch_size, auto_scale_lr['base_batch_size']
        ratio = real_bs / base_bs
        self.logger.info(f'LR is set based on a student batch size of {base_bs} and the '
                         f'current one is {real_bs} ({self.world_size} x {batch_size}). '
                         f'Scaling the original LR by {ratio}.')
        wrappers = (list(optim_wrapper.values()) if isinstance(optim_wrapper, OptimWrapperDict)
                    else [optim_wrapper])
        for wrapper in wrappers:
            for group in wrapper.optimizer.param_groups:
                group['lr'] = group['lr'] * ratio

    def _init_model_weights(self) -> None:
        """mmengine's weight initialisation and broadcast from rank 0, for tensors only.

        mmengine broadcasts every ``state_dict`` entry, and gloo/NCCL cannot broadcast the
        ``_extra_state`` of a synthetic data pool (a dict with a list of batch files and the
        folder) or of a teacher's answer cache, so every pool-based method failed under
        ``tools/dist_train.sh`` with "data should not be empty". Those states belong to each
        process (its own synthesised batches), so only tensors are synced.
        """
        from mmengine.dist import broadcast
        model = self.model.module if is_model_wrapper(self.model) else self.model
        if hasattr(model, 'init_weights'):
            model.init_weights()
            for value in model.state_dict().values():
                if isinstance(value, torch.Tensor):
                    broadcast(value)

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        """mmengine's save, written whole or not at all (local folders).

        mmengine writes the checkpoint straight to its final name. A full disk left a
        truncated ``iter_N.pth`` and an error that did not say what to do; a process killed
        mid-write (the OOM killer, SIGKILL after a pre-emption's grace period) left one that
        ``--resume PATH`` failed on with "failed finding central directory". The file is now
        written under a temporary name and renamed, so ``last_checkpoint`` (written after
        this returns) and every ``iter_N.pth`` name complete checkpoints only.
        """
        if '://' in str(out_dir):  # a remote backend: mmengine's own way
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        from .data_free_loop import resume_command
        last = osp.join(self.work_dir, 'last_checkpoint')
        with partial_path(osp.join(out_dir, filename), 'checkpoint',
                          'Nothing saved before is lost: free space, then run '
                          f'`{resume_command()}`, which continues from the checkpoint '
                          f'named in {last}.') as partial:
            super().save_checkpoint(out_dir, osp.basename(partial), *args, **kwargs)

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True,
               map_location: str | torch.device = 'default') -> None:
        """mmengine's resume, after checking that ``filename`` was saved by a run of this
        config: mmengine loads the weights non-strictly (a checkpoint of another method or
        student would resume half-loaded) and fails later on a raw ``KeyError`` of the
        optimizer or scheduler state. The random streams continue where the checkpoint
        left them (``RandomStateHook``)."""
        from .checkpoint_loader import load_local_checkpoint, run_config_hint, weights_mismatch
        model = self.model.module if is_model_wrapper(self.model) else self.model
        saved = load_local_checkpoint(filename, map_location='cpu')
        state = saved.get('state_dict', saved)
        state = {k[len('module.'):] if k.startswith('module.') else k: v
                 for k, v in state.items()}
        problems = weights_mismatch(model.state_dict(), state)
        if problems:
            raise ValueError(
                f"cannot resume from {filename}: it does not fit this config's model "
                f"({'; '.join(problems)}). Resume a run with "
                f'{run_config_hint(filename, saved)}, or start a new run: leave out --resume, '
                'or give another --work-dir (a work dir already holding another config\'s '
                'checkpoints is resumed from them).')
        configured = self._configured_learning_rates()
        schedule = self._configured_schedule()
        super().resume(filename, resume_optimizer=resume_optimizer,
                       resume_param_scheduler=resume_param_scheduler,
                       map_location=map_location)
        self._keep_configured_schedule(schedule)
        self._keep_configured_learning_rates(configured)
        from mmdfkd.engine.hooks.random_state_hook import RandomStateHook
        for hook in self._hooks:
            if isinstance(hook, RandomStateHook):
                hook.resume_from(self, saved)

    def _optim_wrappers(self) -> dict[str, OptimWrapper]:
        if isinstance(self.optim_wrapper, OptimWrapperDict):
            return dict(self.optim_wrapper.items())
        if isinstance(self.optim_wrapper, OptimWrapper):
            return {'': self.optim_wrapper}
        return {}

    def _configured_learning_rates(self) -> dict[str, list[float]]:
        """Each optimizer's base learning rates as this run's config sets them."""
        return {name: [group.get('initial_lr', group['lr'])
                       for group in wrapper.optimizer.param_groups]
                for name, wrapper in self._optim_wrappers().items()}

    def _labelled_schedulers(self) -> list[tuple[str, object]]:
        schedulers = self.param_schedulers
        if isinstance(schedulers, dict):
            groups = {f'param_scheduler.{name}': list(group)
                      for name, group in schedulers.items()}
        elif isinstance(schedulers, list):
            groups = {'param_scheduler': schedulers}
        else:
            return []
        return [(label if len(group) == 1 else f'{label}[{i}]', scheduler)
                for label, group in groups.items() for i, scheduler in enumerate(group)
                if hasattr(scheduler, 'state_dict')]

    def warn_unfinished_schedules(self, max_iters: int,
                                  time_budget_s: float | None = None) -> None:
        """Warn about each iteration-based annealing scheduler (one with a ``T_max``) that
        the run stops before it has annealed.

        A config ties ``T_max`` to its ``max_iters`` variable when the file is read, so a
        run shortened with ``--cfg-options train_cfg.max_iters=N`` kept the old ``T_max`` and
        ended with its learning rate barely lowered, without a word.
        """
        for label, scheduler in self._labelled_schedulers():
            t_max = getattr(scheduler, 'T_max', None)
            if not isinstance(t_max, int) or getattr(scheduler, 'by_epoch', False):
                continue
            begin = scheduler.begin
            stop = min(scheduler.end, max_iters)
            if begin >= stop or begin + t_max <= stop:
                continue
            share = (stop - begin) / t_max
            above_minimum = (1 + math.cos(math.pi * share)) / 2  # of the cosine's range
            if above_minimum < 0.01:
                continue
            by_time = (' unless train_cfg.time_budget_s runs out first (this scheduler '
                       'anneals by the time spent too)'
                       if time_budget_s is not None and hasattr(scheduler, 'budget_fraction')
                       else '')
            self.logger.warning(
                f'{label} anneals over T_max={t_max} iterations from iteration {begin}, but '
                f'the run stops at iteration {stop} (train_cfg.max_iters={max_iters}), '
                f'{share:.0%} of the way{by_time}: its value ends {above_minimum:.0%} of its '
                'range above its minimum. '
                f'Set {label}.T_max={stop - begin} to anneal within the run.')

    def _configured_schedule(self) -> list[tuple[str, object, dict]]:
        """Every scheduler's settings as this run's config builds them (not its position)."""
        return [(label, scheduler, {k: copy.deepcopy(v) for k, v in scheduler.state_dict().items()
                                    if k not in SCHEDULER_POSITION_KEYS})
                for label, scheduler in self._labelled_schedulers()]

    def _keep_configured_schedule(self, schedule: list[tuple[str, object, dict]]) -> None:
        """Give a resumed run its config's schedule, from the checkpoint's position in it.

        mmengine restores every scheduler setting from the checkpoint, including ``end``,
        which defaults to ``train_cfg.max_iters``: a run resumed with a larger ``max_iters``
        (to train longer) froze its learning rate at the old end, and a changed ``T_max``
        or ``eta_min`` did nothing. The checkpoint now gives the position (``last_step``) and
        the config the rest; with an unchanged config nothing differs.
        """
        for label, scheduler, settings in schedule:
            restored = scheduler.state_dict()
            for key, value in settings.items():
                if restored.get(key) != value:
                    setattr(scheduler, key, value)
                    self.logger.info(f'{label}.{key}: {restored.get(key)} -> {value} (the '
                                     "config's, not the checkpoint's).")

    def _keep_configured_learning_rates(self, configured: dict[str, list[float]]) -> None:
        """Give a resumed run the learning rates of its config.

        mmengine restores the optimizer's and the schedulers' base values from the
        checkpoint, so a run resumed with another ``optim_wrapper...lr`` (the fix for a
        diverged run, which stops with that advice) kept the old one without a word. Where
        the config's base rate differs, it replaces the checkpoint's and the current rate is
        scaled by the same ratio, so the schedule goes on from where it was, at the new level.
        """
        schedulers = self.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for name, wrapper in self._optim_wrappers().items():
            for i, group in enumerate(wrapper.optimizer.param_groups):
                if name not in configured or i >= len(configured[name]):
                    continue
                new, old = configured[name][i], group.get('initial_lr', group['lr'])
                if old == new or old == 0:
                    continue
                group['lr'] = group['lr'] * new / old
                group['initial_lr'] = new
                for scheduler in schedulers:
                    if getattr(scheduler, 'param_name', None) != 'lr':
                        continue
                    for j, sgroup in enumerate(scheduler.optimizer.param_groups):
                        if sgroup is group:
                            scheduler.base_values[j] = new
                key = f'optim_wrapper.{name}' if name else 'optim_wrapper'
                self.logger.info(f'{key}: base learning rate {old:g} -> {new:g} (the config\'s, '
                                 "not the checkpoint's); the schedule goes on from it.")

    def wrap_model(self, model_wrapper_cfg: dict | None, model: nn.Module) -> nn.Module:
        """Build mmdfkd's own wrappers (``DataFreeSeparateDDP``) from mmdfkd's registry.

        mmengine's ``wrap_model`` looks wrapper types up in its root registry only, which
        cannot see a plugin's registries below mmpretrain's.
        """
        wrapper_type = (model_wrapper_cfg or {}).get('type', '')
        if (self.distributed and not is_model_wrapper(model) and isinstance(wrapper_type, str)
                and wrapper_type.split('.')[-1] in MODEL_WRAPPERS.module_dict):
            cfg = dict(model_wrapper_cfg, type=wrapper_type.split('.')[-1])
            return MODEL_WRAPPERS.build(cfg, default_args=dict(module=model.to(get_device())))
        return super().wrap_model(model_wrapper_cfg, model)


def with_random_state_hook(custom_hooks: list | None) -> list:
    """``custom_hooks`` with a ``RandomStateHook`` added unless it has one: a data-free run's
    random streams are part of its state (resume continues them, validation leaves them)."""
    from mmdfkd.engine.hooks.random_state_hook import RandomStateHook
    hooks = list(custom_hooks or [])
    for hook in hooks:
        kind = hook.get('type') if isinstance(hook, dict) else hook
        if kind is RandomStateHook or isinstance(kind, RandomStateHook) or (
                isinstance(kind, str) and kind.split('.')[-1] == 'RandomStateHook'):
            return hooks
    return hooks + [RandomStateHook()]


def _teacher_ckpt_slot(model: dict) -> tuple[dict, str, str] | None:
    """Where ``model`` keeps its teacher checkpoint: (holder, key, dotted name), or ``None``
    for a teacher without local weights (a wrapper around a callable, ONNX model or URL)."""
    teacher = model.get('teacher')
    if isinstance(teacher, dict) and 'checkpoint' in teacher:
        if teacher.get('model') is None:
            return None
        return teacher, 'checkpoint', 'model.teacher.checkpoint'
    return model, 'teacher_ckpt', 'model.teacher_ckpt'


def propagate_teacher_ckpt(cfg: Config) -> None:
    """Copy the top-level ``teacher_ckpt`` (what ``--cfg-options teacher_ckpt=PATH`` changes)
    into ``model.teacher_ckpt``, or into ``model.teacher.checkpoint`` for a teacher wrapper
    built from a local model (config variables are resolved when the file is read).

    A checkpoint set on the model's key itself (``--cfg-options model.teacher_ckpt=PATH``, or
    ``cfg.model.teacher_ckpt = PATH`` in code) is kept, and the top-level variable follows
    it: the config as read from ``cfg.filename`` tells which of the two was changed (the
    model's own key used to be overwritten by the file's default without a word, and the
    run distilled another teacher). Both changed to different files is refused."""
    model = cfg.get('model')
    if cfg.get('teacher_ckpt') is None or not isinstance(model, dict):
        return
    slot = _teacher_ckpt_slot(model)
    if slot is None:
        return
    holder, key, name = slot
    top, given = cfg.teacher_ckpt, holder.get(key)
    if given != top:
        as_read = _config_as_read(cfg)
        if as_read is not None and isinstance(as_read.get('model'), dict):
            read_slot = _teacher_ckpt_slot(as_read.model)
            read_given = read_slot[0].get(read_slot[1]) if read_slot else None
            if given != read_given:
                if top != as_read.get('teacher_ckpt'):
                    raise ValueError(
                        f'teacher_ckpt={top!r} and {name}={given!r} both changed: give the '
                        f'teacher checkpoint once (teacher_ckpt is copied into {name}).')
                cfg.teacher_ckpt = given
                return
    holder[key] = top


def _config_as_read(cfg: Config) -> Config | None:
    """The config as its file reads, without later changes; ``None`` when it has no file."""
    from mmengine.config import Config
    filename = getattr(cfg, 'filename', None)
    if not filename or not osp.isfile(filename):
        return None
    return Config.fromfile(filename)
