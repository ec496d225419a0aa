# DeepInversion on CIFAR-10 (GPU users) with the teacher and the student named by mmpretrain
# model-zoo configs instead of copied model dicts: `cfg_path` stands for that config's
# `model` (read from mmpretrain's installed copy of its configs; nothing is downloaded), and
# other keys beside it override parts of it, e.g. head=dict(num_classes=100). A teacher trained
# with mmpretrain's config (or its model-zoo checkpoint, fetched by the user) is given with
# --cfg-options teacher_ckpt=PATH. The recipe is deepinversion_resnet34_resnet18_cifar10.py's.
_base_ = ['./deepinversion_resnet34_resnet18_cifar10.py']

model = dict(
    # `_delete_` drops the inherited model dicts; a reference takes no `type` of its own.
    teacher=dict(_delete_=True, cfg_path='mmpretrain::resnet/resnet34_8xb16_cifar10.py'),
    student=dict(_delete_=True,
                 cfg_path='mmpretrain::mobilenet_v3/mobilenet-v3-small_8xb16_cifar10.py'),
)
