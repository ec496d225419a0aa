# Runtime shared by every mmdfkd config (mirrors mmpretrain's default_runtime).
default_scope = 'mmdfkd'
# mmengine's Runner, plus what mmdfkd adds to every run: checkpoints written whole (a full
# disk or a kill mid-save leaves no truncated file), exact resume of the random streams.
runner_type = 'DataFreeRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # mmpretrain's VisualizationHook, showing one-channel images in grey (tools/test.py
    # --show-dir switches it on)
    visualization=dict(type='PredictionVisualizationHook', enable=False),
)

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
