# Runtime for data-free distillation: no training dataset, the synthesizer makes the batches.
_base_ = ['./default_runtime.py']

runner_type = 'DataFreeRunner'
# Each trainable part (student, synthesizer) gets its own DDP wrapper (mmengine's
# MMSeparateDistributedDataParallel, made CPU-safe); the frozen teacher none.
model_wrapper_cfg = dict(type='DataFreeSeparateDDP')
# Different ranks synthesise different samples.
randomness = dict(seed=0, diff_rank_seed=True, deterministic=False)

train_cfg = dict(type='DataFreeTrainLoop', max_iters=2000, val_interval=500)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    # Training is counted in iterations, so validation metrics are logged at the iteration
    # they were measured (mmengine's default files them all under epoch 0, which puts every
    # accuracy of a run on one x value in scalars.json and TensorBoard).
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=500, max_keep_ckpts=2,
                    save_last=True),
    # each validation record also holds the teacher queries spent so far (accuracy vs
    # queries: tools/analysis_tools/analyze_logs.py plot_curve --x teacher_queries)
    validation_context=dict(type='ValidationContextHook', keys=['teacher_queries']),
)
custom_hooks = [dict(type='SyntheticVisualizationHook', interval=1000)]
log_processor = dict(by_epoch=False)
