model = dict(
    type='ImageClassifier',
    backbone=dict(type='LeNet', in_channels=1, width=1.0, with_bn=False),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=84,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
