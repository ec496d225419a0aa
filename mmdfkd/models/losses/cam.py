"""Class-activation-map consistency between teacher and student (DiffDFKD's mSARC term)."""
import torch
import torch.nn.functional as F
from torch import nn

from mmdfkd.models.utils.recorder import deepest_output
from mmdfkd.registry import MODELS
from .base import WeightedLoss


def cam_forward(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, final conv map)`` of a CNN classifier whose backbone ends in a feature map,
    pooled by global average pooling into a linear head (``head.fc``): ResNets, WRNs, ...

    Raises:
        TypeError: the model is not of that shape (e.g. LeNet ends in fully connected
            layers), so it has no class activation map.
    """
    backbone = getattr(model, 'backbone', None)
    fc = getattr(getattr(model, 'head', None), 'fc', None)
    neck = getattr(model, 'neck', None)
    if backbone is None or not isinstance(fc, nn.Linear) or (
            neck is not None and type(neck).__name__ != 'GlobalAveragePooling'):
        raise TypeError(f'CAMConsistencyLoss needs a CNN classifier ending in a conv feature '
                        f'map -> GlobalAveragePooling -> linear head (head.fc); '
                        f'{type(getattr(model, "backbone", model)).__name__} is not (remove '
                        'model.cam_loss for this pair).')
    fmap = deepest_output(backbone(images))
    if fmap.dim() != 4:
        raise TypeError(f'CAMConsistencyLoss needs a conv feature map (N, C, H, W) from the '
                        f'backbone; {type(backbone).__name__} gives shape {tuple(fmap.shape)}, '
                        'so it has no class activation map (remove model.cam_loss).')
    return fc(fmap.mean((2, 3))), fmap


def class_activation_map(fmap: torch.Tensor, fc: nn.Linear, classes: torch.Tensor,
                         size: tuple[int, int] | None = None) -> torch.Tensor:
    """ReLU'd CAM of ``classes`` (``sum_k w[c, k] F_k``), resized to ``size`` and scaled to
    a maximum of 1 per image; shape ``(N, H, W)``."""
    weights = fc.weight[classes]  # (N, C)
    cam = F.relu(torch.einsum('nc,nchw->nhw', weights, fmap))
    if size is not None and cam.shape[-2:] != tuple(size):
        cam = F.interpolate(cam[:, None], size=size, mode='bilinear',
                            align_corners=False)[:, 0]
    return cam / cam.flatten(1).amax(1).clamp(min=1e-8).view(-1, 1, 1)


@MODELS.register_module()
class CAMConsistencyLoss(WeightedLoss):
    """MSE between the teacher's and the student's class activation maps for the teacher's
    top-1 class, both normalised to max 1 and compared at the teacher's map size.

    Args:
        loss_weight (float): Multiplier of the loss.
    """

    def forward(self, student_map: torch.Tensor, teacher_map: torch.Tensor,
                student_fc: nn.Linear, teacher_fc: nn.Linear,
                classes: torch.Tensor) -> torch.Tensor:
        """Weighted MSE of the two models' CAMs for ``classes`` (N,), at the teacher's map size.

        ``student_map`` and ``teacher_map`` are the (N, C, H, W) maps the heads' ``*_fc`` layers
        pool; the teacher's CAM is a fixed target (no gradient).
        """
        size = teacher_map.shape[-2:]
        t_cam = class_activation_map(teacher_map, teacher_fc, classes, size)
        s_cam = class_activation_map(student_map, student_fc, classes, size)
        return self.loss_weight * F.mse_loss(s_cam, t_cam.detach())
