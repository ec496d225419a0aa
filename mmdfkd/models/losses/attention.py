"""Attention transfer (Zagoruyko & Komodakis, 2017), the feature term of ZSKT."""
import torch
import torch.nn.functional as F

from mmdfkd.models.utils.recorder import deepest_output
from mmdfkd.registry import MODELS
from .base import WeightedLoss


def spatial_attention(feature: torch.Tensor) -> torch.Tensor:
    """L2-normalised channel mean of squared activations, flattened to (N, H*W)."""
    return F.normalize(feature.pow(2).mean(dim=1).flatten(1), dim=1)


@MODELS.register_module()
class AttentionTransferLoss(WeightedLoss):
    """Sum over stage pairs of the mean squared difference of spatial attention maps.

    Each pair is two ``(N, C, H, W)`` maps that may differ in channels but not in ``H, W``.
    A module that returns a tuple (an mmpretrain backbone's stages) counts as its last entry.

    Args:
        loss_weight (float): Multiplier (ZSKT uses 250).
    """

    def forward(self, student_feats: list[torch.Tensor],
                teacher_feats: list[torch.Tensor]) -> torch.Tensor:
        """Weighted sum over the stage pairs; each pair's maps are (N, C, H, W) of equal H, W."""
        if not student_feats or len(student_feats) != len(teacher_feats):
            raise ValueError(f'AttentionTransferLoss got {len(student_feats)} student and '
                             f'{len(teacher_feats)} teacher feature maps; pair at least '
                             'one stage of each, 1:1.')
        loss = None
        for i, pair in enumerate(zip(student_feats, teacher_feats)):
            fs, ft = (deepest_output(f) for f in pair)
            for side, feat in (('student', fs), ('teacher', ft)):
                if feat.dim() != 4:
                    raise ValueError(
                        f'attention transfer compares (N, C, H, W) maps, but {side} module '
                        f'{i} gives shape {tuple(feat.shape)} (e.g. a transformer\'s tokens); '
                        'name a convolutional stage, or drop model.feature_loss.')
            if fs.shape[-2:] != ft.shape[-2:]:
                raise ValueError(f'attention maps of pair {i} differ in size: student '
                                 f'{tuple(fs.shape)} vs teacher {tuple(ft.shape)}; pair '
                                 'stages of the same resolution.')
            term = (spatial_attention(fs) - spatial_attention(ft)).pow(2).mean()
            loss = term if loss is None else loss + term
        return self.loss_weight * loss
