"""An ensemble of independently initialised classifiers that answers as one model."""
import torch
from mmengine.model import BaseModule
from torch import nn

from mmdfkd.registry import MODELS
from mmdfkd.models.utils.classifier import classifier_logits_and_features


@MODELS.register_module()
class ClassifierEnsemble(BaseModule):
    """``num_members`` copies of one mmpretrain classifier config, each with its own random
    initialisation, whose mean logits are the ensemble's logits.

    DIP-KD's primer is the student's only teacher of soft labels, and a primer trained on a
    few ten thousand hard labels varies by points from seed to seed; averaging independently
    initialised primers removes much of that variance (``model.primer=dict(type=
    'ClassifierEnsemble', model=..., num_members=4)``). Algorithms that train the ensemble
    call :meth:`member_logits` and give each member its own loss; everything that only reads
    it (``forward`` in ``'tensor'`` mode, :func:`classifier_logits_and_features`) sees one
    classifier.

    Args:
        model (dict): mmpretrain classifier config of every member.
        num_members (int): Number of members (>= 1).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self, model: dict, num_members: int, init_cfg: dict | None = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_members < 1:
            raise ValueError(f'ClassifierEnsemble num_members must be >= 1, got {num_members}')
        self.members = nn.ModuleList(MODELS.build(model) for _ in range(num_members))

    def member_logits(self, inputs: torch.Tensor) -> list[torch.Tensor]:
        """Each member's logits for ``inputs`` (already normalised images)."""
        return [member(inputs, mode='tensor') for member in self.members]

    def forward(self, inputs: torch.Tensor, data_samples: list | None = None,
                mode: str = 'tensor') -> torch.Tensor:
        """Mean logits of the members; only ``'tensor'`` mode (the ensemble is a soft-label
        source inside an algorithm, not a model to evaluate on its own)."""
        if mode != 'tensor':
            raise ValueError(f"ClassifierEnsemble only supports mode='tensor', got {mode!r}")
        return torch.stack(self.member_logits(inputs)).mean(0)

    def logits_and_features(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean logits and the members' penultimate features, concatenated."""
        outs = [classifier_logits_and_features(member, inputs) for member in self.members]
        return (torch.stack([logits for logits, _ in outs]).mean(0),
                torch.cat([feats for _, feats in outs], dim=1))
