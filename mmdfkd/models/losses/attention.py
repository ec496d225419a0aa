"""Attention transfer (Zagoruyko & Komodakis, 2017), the feature term of ZSKT."""
import torch
import torch.nn.functional as F
from torch import nn

from mmdfkd.registry import MODELS


def spatial_attention(feature: torch.Tensor) -> torch.Tensor:
    """L2-normalised channel mean of squared activations, flattened to (N, H*W)."""
    return F.normalize(feature.pow(2).mean(dim=1).flatten(1), dim=1)


@MODELS.register_module()
class AttentionTransferLoss(nn.Module):
    """Sum over stage pairs of the mean squared difference of spatial attention maps.

    Student and teacher stages may differ in channels but must match in spatial size.

    Args:
        loss_weight (float): Multiplier (ZSKT uses 250).
    """

    def __init__(self, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, student_feats: list[torch.Tensor],
                teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        if len(student_feats) != len(teacher_feats):
            raise ValueError(f'AttentionTransferLoss got {len(student_feats)} student and '
                             f'{len(teacher_feats)} teacher feature maps; pair them 1:1.')
        loss = student_feats[0].new_zeros(())
        for fs, ft in zip(student_feats, teacher_feats):
            if fs.shape[-2:] != ft.shape[-2:]:
                raise ValueError(f'attention maps differ in size: student {tuple(fs.shape)}'
                                 f' vs teacher {tuple(ft.shape)}')
            loss = loss + (spatial_attention(fs) - spatial_attention(ft)).pow(2).mean()
        return self.loss_weight * loss
