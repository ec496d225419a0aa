from .budget_cosine_scheduler import BudgetCosineAnnealingLR, BudgetCosineAnnealingParamScheduler

__all__ = ['BudgetCosineAnnealingLR', 'BudgetCosineAnnealingParamScheduler']
