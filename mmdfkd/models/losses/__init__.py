from .attention import AttentionTransferLoss, spatial_attention
from .bn_statistics import BNStatisticsLoss
from .cam import CAMConsistencyLoss, cam_forward, class_activation_map
from .contrastive import (InstanceContrastiveLoss, SupConLoss, info_nce, instance_channel_means,
                          supervised_contrastive)
from .image_prior import TotalVariationLoss
from .dafl import ActivationLoss, InformationEntropyLoss, OneHotLoss
from .kd import (AdversarialDisagreementLoss, DecoupledKDLoss, KLDivergenceLoss, L1LogitLoss,
                 MSELogitLoss, StandardizedKLLoss, decoupled_kd, kl_divergence,
                 l1_logit_distance, mse_logit_distance, standardize_logits)

__all__ = [
    'KLDivergenceLoss', 'L1LogitLoss', 'AdversarialDisagreementLoss', 'kl_divergence',
    'l1_logit_distance', 'OneHotLoss', 'InformationEntropyLoss', 'ActivationLoss',
    'BNStatisticsLoss', 'AttentionTransferLoss', 'spatial_attention', 'TotalVariationLoss',
    'InstanceContrastiveLoss', 'info_nce', 'instance_channel_means',
    'SupConLoss', 'supervised_contrastive', 'MSELogitLoss', 'mse_logit_distance',
    'CAMConsistencyLoss', 'cam_forward', 'class_activation_map', 'DecoupledKDLoss',
    'decoupled_kd', 'StandardizedKLLoss', 'standardize_logits'
]
