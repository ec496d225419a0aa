"""Build one optimizer wrapper per trainable part of a data-free algorithm."""
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapperDict
from torch import nn

from mmdfkd.registry import OPTIM_WRAPPER_CONSTRUCTORS
from .mixed_precision import amp_device_available


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DataFreeOptimWrapperConstructor:
    """Turn ``optim_wrapper=dict(student=dict(...), synthesizer=dict(...))`` into an
    :class:`OptimWrapperDict` with one wrapper per named child of the model.

    Each entry is an ordinary mmengine optim-wrapper config (``type``, ``optimizer``,
    ``paramwise_cfg``, ``clip_grad``...), so each part keeps its own optimizer and LR
    schedule (``param_scheduler`` can be a dict keyed by the same names). Entries for a part
    the config switched off (the attribute is ``None``, e.g. DIP-KD without a primer) are
    skipped.

    ``accumulative_counts`` (mmengine's gradient accumulation) is accepted only for the parts
    the model lists in ``accumulation_steps_per_iter`` (a mapping of part name to its updates
    per iteration, e.g. ``{'student': model.student_steps}``), and only when it divides that
    number: each iteration then ends on a whole update, so a checkpoint never holds a
    half-accumulated gradient and a resumed run takes the same steps. Other parts (generator,
    meta and contrast-head updates that bypass ``update_params``, DIP-KD's one update per
    iteration) would ignore the setting or break exact resume, so it is refused for them.

    Args:
        optim_wrapper_cfg (dict): Mapping of child-module name to optim-wrapper config.
        paramwise_cfg (dict, optional): Not supported at this level; set it per entry.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None) -> None:
        if paramwise_cfg is not None:
            raise ValueError('DataFreeOptimWrapperConstructor: put paramwise_cfg inside each '
                             'entry (e.g. optim_wrapper.student.paramwise_cfg).')
        if not optim_wrapper_cfg:
            raise ValueError('optim_wrapper needs at least a `student` entry.')
        self.optim_wrapper_cfg = optim_wrapper_cfg

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        """One optim wrapper per entry, for the child of ``model`` of the same name, as an
        ``OptimWrapperDict``; entries for parts the config switched off are skipped.
        """
        model = getattr(model, 'module', model)
        wrappers = {}
        for name, cfg in self.optim_wrapper_cfg.items():
            if not isinstance(cfg, dict) or 'optimizer' not in cfg:
                raise ValueError(f'optim_wrapper.{name} must be an optim-wrapper config with an '
                                 f"`optimizer`, e.g. dict(type='OptimWrapper', optimizer="
                                 f"dict(type='Adam', lr=1e-3)); got {cfg!r}.")
            submodule = getattr(model, name, None)
            if submodule is None and hasattr(model, name):
                continue  # the part exists but is switched off in this config (ablation)
            if not isinstance(submodule, nn.Module):
                children = [n for n, _ in model.named_children()]
                raise ValueError(f"optim_wrapper.{name}: the model has no child '{name}'; "
                                 f'children are {children}.')
            cfg = dict(cfg)
            if cfg.get('type') == 'AmpOptimWrapper' and not amp_device_available():
                raise ValueError(
                    f'optim_wrapper.{name}.type: AmpOptimWrapper (mixed precision) needs a '
                    'CUDA, NPU, MLU or MUSA device, and this machine has none; use '
                    "type='OptimWrapper' here.")
            self._check_accumulation(model, name, cfg.get('accumulative_counts', 1))
            paramwise = cfg.pop('paramwise_cfg', None)
            wrappers[name] = DefaultOptimWrapperConstructor(cfg, paramwise)(submodule)
        return OptimWrapperDict(**wrappers)

    @staticmethod
    def _check_accumulation(model: nn.Module, name: str, counts: int) -> None:
        key = f'optim_wrapper.{name}.accumulative_counts'
        if not isinstance(counts, int) or isinstance(counts, bool) or counts < 1:
            raise ValueError(f'{key} must be an int >= 1; got {counts!r}.')
        if counts == 1:
            return
        steps = dict(getattr(model, 'accumulation_steps_per_iter', {}))
        if name not in steps:
            can = ', '.join(f'optim_wrapper.{n}' for n in steps) or 'none of its parts'
            raise ValueError(
                f'{key}={counts}: {type(model).__name__} cannot accumulate gradients for its '
                f'{name} (its updates bypass update_params, or one per iteration would leave '
                'half-accumulated gradients in checkpoints). Remove the key; a larger batch '
                f'has the same effect. Parts that can accumulate: {can}.')
        if steps[name] % counts:
            raise ValueError(
                f'{key}={counts} must divide the {steps[name]} {name} updates per iteration '
                f'(model.{name}_steps), so that every iteration ends on a whole update and '
                'resume is exact; set model.{0}_steps to a multiple of {1} or change {2}.'
                .format(name, counts, key))
