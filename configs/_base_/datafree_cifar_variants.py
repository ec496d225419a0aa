# Pieces that turn a method's ResNet-34 -> ResNet-18 CIFAR-10 config into its CIFAR-100 and
# WRN-40-2 -> WRN-16-2 variants. A variant config inherits from the method's config and this
# file and takes the pieces as {{_base_.NAME}}, so every method switches the same way.
cifar100_head = dict(head=dict(num_classes=100))
cifar100_preprocessor = dict(num_classes=100, mean=[129.304, 124.07, 112.434],
                             std=[68.17, 65.392, 70.418])
cifar100_val_dataloader = dict(dataset=dict(type='LocalCIFAR100', data_root='data/cifar100'))
wrn40_2 = dict(backbone=dict(_delete_=True, type='WideResNet', depth=40, widen_factor=2),
               head=dict(in_channels=128))
wrn16_2 = dict(backbone=dict(_delete_=True, type='WideResNet', depth=16, widen_factor=2),
               head=dict(in_channels=128))
# WideResNet's three stages (CMI's contrastive embedding, ZSKT's attention pairs).
wrn_stages = ['backbone.groups.0', 'backbone.groups.1', 'backbone.groups.2']
