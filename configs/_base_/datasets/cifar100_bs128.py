_base_ = ['./cifar10_bs128.py']
dataset_type = 'LocalCIFAR100'
data_root = 'data/cifar100'
data_preprocessor = dict(num_classes=100, mean=[129.304, 124.07, 112.434],
                         std=[68.17, 65.392, 70.418])
train_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
val_dataloader = dict(dataset=dict(type=dataset_type, data_root=data_root))
test_dataloader = val_dataloader
