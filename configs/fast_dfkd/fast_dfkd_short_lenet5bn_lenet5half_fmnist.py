# Fast-DFKD on a short budget: the same method and recipe as
# fast_dfkd_lenet5bn_lenet5half_fmnist.py with the whole schedule (cosine student LR) fitted
# into about 2 minutes of a 2-core CPU, for the time-to-accuracy comparison with
# DeepInversion (Fast-DFKD's claim: DeepInversion's accuracy in a fraction of its time).
_base_ = ['./fast_dfkd_lenet5bn_lenet5half_fmnist.py']

max_iters = 45
param_scheduler = dict(
    student=dict(type='BudgetCosineAnnealingLR', T_max=max_iters, by_epoch=False),
    synthesizer=dict(type='ConstantLR', factor=1.0, by_epoch=False))
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
custom_hooks = []
