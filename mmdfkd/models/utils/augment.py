"""Per-sample augmentation of synthetic batches with torchvision.transforms.v2."""
import torch
from torch import nn
from torchvision.transforms import v2


class BatchAugment(nn.Module):
    """Apply a torchvision ``transforms.v2`` pipeline to a batch of image tensors.

    v2 transforms draw one set of random parameters per call, so calling them on a whole
    batch flips/crops all images alike. ``per_sample=True`` runs them per image instead (more
    diversity for the student); ``per_sample=False`` keeps one jitter for the batch (what
    DeepInversion does; differentiable, cheap).

    Args:
        transforms (list[dict]): ``dict(type=<name in torchvision.transforms.v2>, **kwargs)``,
            e.g. ``[dict(type='RandomHorizontalFlip'), dict(type='RandomCrop', size=32,
            padding=2)]``.
        per_sample (bool): Independent random parameters for every image.
    """

    def __init__(self, transforms: list[dict], per_sample: bool = True) -> None:
        super().__init__()
        ops = []
        for cfg in transforms:
            cfg = dict(cfg)
            name = cfg.pop('type', None)
            if not name or not hasattr(v2, name):
                raise ValueError(f'student_augment: unknown torchvision.transforms.v2 '
                                 f"transform '{name}'")
            ops.append(getattr(v2, name)(**cfg))
        self.pipeline = v2.Compose(ops)
        self.per_sample = per_sample

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not self.per_sample:
            return self.pipeline(images)
        return torch.stack([self.pipeline(img) for img in images])
