# CPSC-DFKD with a replay pool (our addition): every generator batch also goes to a
# disk-backed pool, and half of each student batch is drawn from it. The adversarial
# generator keeps moving to where the student is weak, so fresh samples alone cover a narrow,
# changing set of images; the pool keeps the earlier ones in front of the student.
# Everything else is configs/cpsc_dfkd/cpsc_dfkd_lenet5bn_lenet5half_fmnist.py.
_base_ = ['./cpsc_dfkd_lenet5bn_lenet5half_fmnist.py']

model = dict(
    synthesizer=dict(
        pool=dict(type='SyntheticDataPool', max_images=60000, policy='fifo'),
        replay_ratio=0.5,
    ),
)

# Pooled samples skip the generator's forward, so an iteration takes ~0.7 s instead of
# ~1.2 s on a 2-core CPU: the schedule is longer to fill about 14 minutes.
max_iters = 1000
# Only T_max changes; the rest of each scheduler merges in from the base config.
param_scheduler = dict(student=dict(T_max=max_iters), synthesizer=dict(T_max=max_iters))
train_cfg = dict(max_iters=max_iters, val_interval=200)
default_hooks = dict(checkpoint=dict(interval=200))
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=500)]
