"""Contrastive objectives over synthetic samples."""
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmdfkd.registry import MODELS
from .base import WeightedLoss


def instance_channel_means(features: Sequence) -> torch.Tensor:
    """Per-image channel means of feature maps (``(N, C, ...)``; ``(N, C)`` kept as is),
    concatenated over the list: CMI's instance embedding, shape ``(N, sum C)``. Tuples in
    the list (an mmpretrain backbone's stage outputs) are unpacked."""
    maps: list[torch.Tensor] = []
    for f in features:
        maps.extend(f if isinstance(f, (tuple, list)) else [f])
    return torch.cat([f.flatten(2).mean(2) if f.dim() > 2 else f for f in maps], dim=1)


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-query InfoNCE: query ``i``'s positive is key ``i``, every other key a negative.

    Both inputs are L2-normalised ``(N, D)`` embeddings; returns shape ``(N,)``.
    """
    logits = queries @ keys.t() / temperature
    return F.cross_entropy(logits, torch.arange(queries.size(0), device=queries.device),
                           reduction='none')


@MODELS.register_module()
class InstanceContrastiveLoss(WeightedLoss):
    """CMI's contrastive term (Fang et al., IJCAI 2021): make synthetic samples tell apart.

    Each image has two embeddings from the teacher (here: the per-image channel means of the
    teacher's BN inputs) for a *global* view and a *local* (random-resized-crop) view. A
    projection head maps them to a unit sphere; each local view must pick its own global view
    among those of the batch and of earlier batches kept in a memory bank (negatives), so the
    generator is pushed away from samples it already made. Only the local side carries
    gradient; the global side is a detached target.

    The head is built by :meth:`build` once the feature size is known (the synthesizer calls
    it when it binds the teacher); the bank is a buffer, so it is checkpointed.

    Args:
        embed_dim (int): Output size of the projection head.
        temperature (float): InfoNCE temperature (``cr_T``).
        bank_size (int): Embeddings kept in the memory bank.
        num_negatives (int): Bank entries drawn as extra negatives per step.
        loss_weight (float): Multiplier of the loss (``cr``).
    """

    def __init__(self, embed_dim: int = 256, temperature: float = 0.1, bank_size: int = 4096,
                 num_negatives: int = 4096, loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        if temperature <= 0:
            raise ValueError(f'InstanceContrastiveLoss temperature must be > 0, got '
                             f'{temperature}')
        self.embed_dim, self.temperature = embed_dim, temperature
        self.bank_size, self.num_negatives = bank_size, num_negatives
        self.head: nn.Module | None = None

    def build(self, feature_dim: int) -> None:
        """Create the projection head and the memory bank for ``feature_dim`` inputs."""
        self.head = nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True),
                                  nn.Linear(feature_dim, self.embed_dim))
        # Rows hold [local, global] raw features of earlier samples.
        self.register_buffer('bank', torch.zeros(self.bank_size, 2 * feature_dim))
        self.register_buffer('bank_count', torch.zeros((), dtype=torch.long))
        self.register_buffer('bank_ptr', torch.zeros((), dtype=torch.long))

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(x), dim=1)

    def forward(self, local_features: torch.Tensor,
                global_features: torch.Tensor) -> torch.Tensor:
        """Weighted InfoNCE of each sample's local view against its global view.

        Both inputs are raw (N, D) features. Up to ``num_negatives`` samples of the bank join
        as further queries and negatives; their mean loss weighs as much as the batch's. Call
        :meth:`build` first and :meth:`memorize` after the step.
        """
        if self.head is None:
            raise RuntimeError('InstanceContrastiveLoss.build(feature_dim) was not called.')
        n = local_features.size(0)
        count = int(self.bank_count)
        if count:
            idx = torch.randperm(count, device=self.bank.device)[:self.num_negatives]
            cached_local, cached_global = self.bank[idx].chunk(2, dim=1)
            local_features = torch.cat([local_features, cached_local])
            global_features = torch.cat([global_features, cached_global])
        per_query = info_nce(self._project(local_features),
                             self._project(global_features).detach(), self.temperature)
        # Current samples and bank samples weigh equally however many negatives are drawn.
        loss = per_query[:n].mean() + (per_query[n:].mean() if count else 0.)
        return self.loss_weight * loss

    @torch.no_grad()
    def memorize(self, local_features: torch.Tensor, global_features: torch.Tensor) -> None:
        """Push a batch's raw features into the ring-buffer bank."""
        rows = torch.cat([local_features, global_features], dim=1).detach()[:self.bank_size]
        ptr = int(self.bank_ptr)
        idx = (torch.arange(rows.size(0), device=rows.device) + ptr) % self.bank_size
        self.bank[idx] = rows.to(self.bank.dtype)
        self.bank_ptr.fill_((ptr + rows.size(0)) % self.bank_size)
        self.bank_count.fill_(min(self.bank_size, int(self.bank_count) + rows.size(0)))


def supervised_contrastive(features: torch.Tensor, labels: torch.Tensor,
                           temperature: float) -> torch.Tensor:
    """SupCon (Khosla et al., 2020) over ``features`` of shape ``(N, V, D)``: ``V`` views of
    ``N`` samples, L2-normalised. Every one of the ``N*V`` anchors treats all other views of
    same-label samples as positives and every other view as the denominator:

    ``L_i = -1/|P(i)| sum_{p in P(i)} log(exp(z_i.z_p / T) / sum_{a != i} exp(z_i.z_a / T))``

    averaged over anchors (each anchor has at least its own other views as positives).
    """
    n, v, _ = features.shape
    z = features.reshape(n * v, -1)
    y = labels.repeat_interleave(v)
    logits = z @ z.t() / temperature
    self_mask = torch.eye(n * v, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float('-inf'))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (y[:, None] == y[None, :]) & ~self_mask
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(1)
    return -(pos_log_prob / positives.sum(1).clamp(min=1)).mean()


@MODELS.register_module()
class SupConLoss(WeightedLoss):
    """Pseudo-supervised contrast between the student's and the teacher's view of a batch
    (CPSC-DFKD): the two models' penultimate features of the same images are the two views,
    the labels the generator was asked for are the classes. Same-label samples are pulled
    together in both feature spaces, different labels pushed apart.

    Features of different sizes (LeNet-5 84-d vs LeNet-5-half 42-d) go through one linear
    projection per model to ``embed_dim``; with ``embed_dim=None`` they are used as they are
    (sizes must match, e.g. ResNet-34 -> ResNet-18). Projections are built by :meth:`build`.

    Args:
        temperature (float): SupCon temperature (0.07 in the paper).
        embed_dim (int, optional): Common projection size.
        loss_weight (float): Multiplier of the loss.
    """

    def __init__(self, temperature: float = 0.07, embed_dim: int | None = None,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight)
        if temperature <= 0:
            raise ValueError(f'SupConLoss temperature must be > 0, got {temperature}')
        self.temperature, self.embed_dim = temperature, embed_dim
        self.student_proj: nn.Module = nn.Identity()
        self.teacher_proj: nn.Module = nn.Identity()

    def build(self, student_dim: int, teacher_dim: int) -> None:
        """Create the projections for the two models' feature sizes."""
        if self.embed_dim is None:
            if student_dim != teacher_dim:
                raise ValueError(f'SupConLoss: the student\'s penultimate features are '
                                 f'{student_dim}-d, the teacher\'s {teacher_dim}-d; set '
                                 'model.synthesizer.contrastive.embed_dim (e.g. 64) to '
                                 'project both to a common size.')
            return
        self.student_proj = nn.Linear(student_dim, self.embed_dim)
        self.teacher_proj = nn.Linear(teacher_dim, self.embed_dim)

    def forward(self, student_features: torch.Tensor, teacher_features: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Weighted SupCon over the student and teacher views of each sample, ``labels`` (N,)
        marking the positives (the generator's sampled classes).
        """
        views = torch.stack([F.normalize(self.student_proj(student_features), dim=1),
                             F.normalize(self.teacher_proj(teacher_features), dim=1)], dim=1)
        return self.loss_weight * supervised_contrastive(views, labels, self.temperature)
