"""Cosine annealing fitted to ``train_cfg.time_budget_s`` as well as to the iteration count."""
import math

from mmengine.logging import MessageHub
from mmengine.optim.scheduler import CosineAnnealingParamScheduler
from mmengine.optim.scheduler.lr_scheduler import LRSchedulerMixin

from mmdfkd.engine.runner import BUDGET_FRACTION_KEY
from mmdfkd.registry import PARAM_SCHEDULERS


@PARAM_SCHEDULERS.register_module()
class BudgetCosineAnnealingParamScheduler(CosineAnnealingParamScheduler):
    """Cosine annealing whose progress is the larger of the step count's and the time
    budget's: ``p = max(step / T_max, spent share of train_cfg.time_budget_s)`` and
    ``value = eta_min + (base - eta_min) * (1 + cos(pi * p)) / 2``.

    A schedule written in iterations ends too late on a slower machine (the time budget stops
    the run before the value has annealed) and too early on a faster one (the budget is not
    used). With this scheduler a time-budgeted run always ends annealed: ``T_max`` is the
    most iterations the schedule may take, the budget the most seconds. Without a budget
    it is mmengine's ``CosineAnnealingParamScheduler`` in closed form. Leaving ``T_max``
    and ``end`` unset gives a purely time-based schedule (the value stays at its base
    without a budget).

    The spent share is read from the message hub's runtime info (``time_budget_fraction``),
    which ``DataFreeTrainLoop`` publishes after every iteration and restores on resume; the
    value is computed in closed form from the base value, so it does not drift when the
    share jumps and a resumed run continues on the same curve.

    Args:
        Same as :class:`mmengine.optim.scheduler.CosineAnnealingParamScheduler`.
    """

    def __init__(self, *args, T_max: int | None = None, **kwargs) -> None:
        # mmengine reads T_max=0 as "unset" and a negative one would hold the value at its
        # base for the whole run, both silently.
        if T_max is not None and not (isinstance(T_max, int) and T_max >= 1):
            raise ValueError(f'{type(self).__name__} T_max must be an integer >= 1 (the most '
                             f'iterations the schedule may take; param_scheduler), got '
                             f'{T_max!r}. Leave T_max and end unset for a schedule by the '
                             'time budget alone.')
        super().__init__(*args, T_max=T_max, **kwargs)

    def budget_fraction(self) -> float:
        """Share of the time budget spent, in ``[0, 1]`` (0 without a budget)."""
        fraction = MessageHub.get_current_instance().get_info(BUDGET_FRACTION_KEY, 0.0)
        return min(max(float(fraction), 0.0), 1.0)

    def progress(self) -> float:
        """Schedule progress in ``[0, 1]``: steps or seconds, whichever ran out further."""
        return max(min(self.last_step / self.T_max, 1.0), self.budget_fraction())

    def _get_value(self) -> list:
        factor = (1 + math.cos(math.pi * self.progress())) / 2
        values = []
        for base in self.base_values:
            eta_min = base * self.eta_min_ratio if self.eta_min_ratio is not None \
                else self.eta_min
            values.append(eta_min + (base - eta_min) * factor)
        return values


@PARAM_SCHEDULERS.register_module()
class BudgetCosineAnnealingLR(LRSchedulerMixin, BudgetCosineAnnealingParamScheduler):
    """:class:`BudgetCosineAnnealingParamScheduler` on the learning rate, e.g.
    ``param_scheduler = dict(type='BudgetCosineAnnealingLR', T_max=460, by_epoch=False)``."""
