"""Contrastive objectives over synthetic samples."""
import torch
import torch.nn.functional as F
from torch import nn

from mmdfkd.registry import MODELS


def instance_channel_means(features: list[torch.Tensor]) -> torch.Tensor:
    """Per-image channel means of feature maps (``(N, C, ...)``; ``(N, C)`` kept as is),
    concatenated over the list: CMI's instance embedding, shape ``(N, sum C)``."""
    return torch.cat([f.flatten(2).mean(2) if f.dim() > 2 else f for f in features], dim=1)


def info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per-query InfoNCE: query ``i``'s positive is key ``i``, every other key a negative.

    Both inputs are L2-normalised ``(N, D)`` embeddings; returns shape ``(N,)``.
    """
    logits = queries @ keys.t() / temperature
    return F.cross_entropy(logits, torch.arange(queries.size(0), device=queries.device),
                           reduction='none')


@MODELS.register_module()
class InstanceContrastiveLoss(nn.Module):
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
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'InstanceContrastiveLoss temperature must be > 0, got '
                             f'{temperature}')
        self.embed_dim, self.temperature = embed_dim, temperature
        self.bank_size, self.num_negatives = bank_size, num_negatives
        self.loss_weight = loss_weight
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
