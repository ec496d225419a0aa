# LeNet-5-half (DAFL's student): half the channels and hidden units of LeNet-5, with BN.
model = dict(
    type='ImageClassifier',
    backbone=dict(type='LeNet', in_channels=1, width=0.5, with_bn=True),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=42,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)),
)
