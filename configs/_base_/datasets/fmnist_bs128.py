# Fashion-MNIST, padded to 32x32. The train split is used ONLY to train teachers (and the
# real-data reference student); the test split ONLY to evaluate.
dataset_type = 'FashionMNISTIdx'
data_root = '/usr/share/datasets/fashion-mnist'
data_preprocessor = dict(num_classes=10, mean=[72.94], std=[90.0], to_rgb=False)

train_pipeline = [
    dict(type='CenterPad', size=32),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
# ToGrayscale is a no-op on the dataset's (H, W) images; it lets mmpretrain's inferencer,
# which loads files in colour, run the exported greyscale students on image files.
test_pipeline = [dict(type='ToGrayscale'), dict(type='CenterPad', size=32),
                 dict(type='PackInputs')]

# Loaded in the main process (num_workers=0): this pipeline costs ~0.1 ms per image, less
# than sending each packed sample back from a worker process. Measured on the 2-core CPU
# (docs/benchmarks.md, "Data loading"): a teacher epoch 58 s -> 27 s, a 10K-image
# validation 7.4 s -> 1.8 s. Configs with heavier pipelines (CIFAR) keep their workers.
train_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, split='train',
                 pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = dict(
    batch_size=500,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, split='test',
                 pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
