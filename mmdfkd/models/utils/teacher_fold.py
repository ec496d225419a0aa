"""Initialise a narrower student by folding a white-box teacher's channels together.

Slicing (``teacher_slice.py``) keeps half of every layer's channels and throws the other half
away, with what it carried: the sliced LeNet-5-half scores ~32 % on Fashion-MNIST before any
distillation. Folding keeps all of them: every layer's output channels are clustered, each
cluster becomes one student channel (the members' weighted mean), and the next layer's input
weights of a cluster's members are summed into that channel's input weight. This is data-free
model folding (Wang et al., "Forget the Data and Fine-Tuning! Just Fold the Network to
Compress", ICLR 2025) with the BatchNorm statistics carried over from the teacher's running
statistics instead of data: the folded LeNet-5-half scores ~61 % before distillation, and the
distilled student gains ~4 points over the sliced start on the offline probe
(docs/benchmarks.md). Only the teacher's weights are read.

Two facts make the merge close to exact for channels that compute similar features:

- BatchNorm in eval mode is an affine map, so ``BN(W x)`` is the single affine map
  ``A x + b``; channels are compared (and averaged) in that folded form.
- ReLU and max-pooling are positively homogeneous (``relu(n * z) = n * relu(z)`` for
  ``n > 0``), so each channel is divided by its norm ``n`` before clustering, and ``n`` moves
  into the next layer's input weight. Channels that differ only in scale merge exactly.
"""
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def weighted_kmeans(points: torch.Tensor, weights: torch.Tensor, k: int, restarts: int = 10,
                    iterations: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted k-means (k-means++ seeding, best of ``restarts``), deterministic in ``seed``.

    Args:
        points (Tensor): ``(N, D)`` points.
        weights (Tensor): ``(N,)`` non-negative weights of the points.
        k (int): Number of clusters, ``1 <= k <= N``.

    Returns:
        tuple[Tensor, Tensor]: The ``(N,)`` cluster index of every point and the ``(k, D)``
        weighted centroids. Every cluster has at least one member.
    """
    n = points.size(0)
    if not 1 <= k <= n:
        raise ValueError(f'k-means needs 1 <= k <= {n} clusters, got {k}.')
    weights = weights.clamp_min(0) + 1e-12  # all-zero weights still seed and cluster
    generator = torch.Generator().manual_seed(seed)
    best: tuple[float, torch.Tensor, torch.Tensor] | None = None
    for _ in range(restarts):
        chosen = [int(torch.multinomial(weights, 1, generator=generator))]
        for _ in range(k - 1):
            gap = torch.cdist(points, points[chosen]).min(1).values.pow(2) * weights
            gap[chosen] = 0
            chosen.append(int(torch.multinomial(gap + 1e-30, 1, generator=generator)))
        centroids = points[chosen].clone()
        for _ in range(iterations):
            assign = torch.cdist(points, centroids).argmin(1)
            for j in range(k):
                members = assign == j
                if not members.any():  # re-seed an empty cluster at the worst-fitted point
                    misfit = (points - centroids[assign]).pow(2).sum(1) * weights
                    worst = int(misfit.argmax())
                    assign[worst] = j
                    members = assign == j
                w = weights[members, None]
                centroids[j] = (w * points[members]).sum(0) / w.sum()
        assign = torch.cdist(points, centroids).argmin(1)
        if assign.unique().numel() < k:
            continue
        cost = float((weights * (points - centroids[assign]).pow(2).sum(1)).sum())
        if best is None or cost < best[0]:
            best = (cost, assign, centroids)
    if best is None:  # degenerate (e.g. duplicated points): one point per cluster, in order
        assign = torch.arange(n) % k
        centroids = torch.stack([points[assign == j].mean(0) for j in range(k)])
        return assign, centroids
    return best[1], best[2]


def _layer_chain(model: nn.Module) -> list[tuple[str, nn.Module, _BatchNorm | None]]:
    """The conv/linear layers in registration order, each with the BatchNorm registered right
    after it (if any)."""
    modules = list(model.named_modules())
    chain = []
    for i, (name, module) in enumerate(modules):
        if isinstance(module, _LAYER_TYPES):
            following = modules[i + 1][1] if i + 1 < len(modules) else None
            bn = following if (isinstance(following, _BatchNorm)
                               and following.num_features == module.weight.size(0)) else None
            chain.append((name, module, bn))
    return chain


def _merge_inputs(weight: torch.Tensor, student_in: int,
                  previous: tuple[torch.Tensor, torch.Tensor, int] | None,
                  name: str) -> torch.Tensor:
    """The teacher layer's weight over the student's (folded) input channels: the columns of
    a cluster's members, each scaled by the member's norm, summed (also across a channel-major
    flatten ``C x H x W -> C*H*W``)."""
    teacher_in = weight.size(1)
    if previous is None:  # the first layer reads the image
        if teacher_in != student_in:
            raise ValueError(f"model.student_init_from_teacher='fold': the first layer "
                             f"'{name}' reads {teacher_in} channels in the teacher and "
                             f'{student_in} in the student.')
        return weight
    assign, scale, clusters = previous
    channels = assign.numel()
    spatial = teacher_in // channels
    if teacher_in % channels or student_in != clusters * spatial:
        raise ValueError(
            f"model.student_init_from_teacher='fold': the input of '{name}' ({teacher_in} in "
            f'the teacher, {student_in} in the student) does not follow the previous layer '
            f'({channels} -> {clusters} channels); folding needs the layers to run as a chain '
            "in registration order (use 'first' for other topologies).")
    grouped = weight.reshape(weight.size(0), channels, spatial, *weight.shape[2:])
    scaled = grouped * scale.view(1, -1, *([1] * (grouped.dim() - 2)))
    merged = scaled.new_zeros(weight.size(0), clusters, *grouped.shape[2:])
    merged.index_add_(1, assign, scaled)
    return merged.reshape(weight.size(0), clusters * spatial, *weight.shape[2:])


def _output_norms(next_layer: nn.Module | None, channels: int) -> torch.Tensor:
    """How strongly the next layer reads each of ``channels`` outputs: the norm of its input
    weights for that channel (summed over a flatten's spatial positions)."""
    if next_layer is None:
        return torch.ones(channels)
    weight = next_layer.weight.detach()
    per_channel = weight.reshape(weight.size(0), channels, -1)
    return per_channel.pow(2).sum((0, 2)).sqrt()


@torch.no_grad()
def fold_student_from_teacher(student: nn.Module, teacher: nn.Module,
                              seed: int = 0) -> nn.Module:
    """Write a folded copy of ``teacher`` into the narrower ``student``.

    For each conv/linear layer (registration order; a BatchNorm registered right after it is
    folded into it): merge the input channels the previous layer folded, fold BN into an
    affine map ``A x + b``, divide every output channel's ``[A, b]`` by its norm, cluster them
    with weighted k-means into as many clusters as the student has channels (weight: the
    channel's norm times how strongly the next layer reads it), and write the centroids.
    A layer as wide in the student as in the teacher (the classifier) is copied with only its
    inputs merged. Where the student has BatchNorm, its running statistics are the ones the
    teacher's statistics imply for the merged channel (mean and std of the members, weighted),
    and its affine parameters make the eval-mode output exactly ``A x + b``; so training-mode
    normalisation starts where the teacher's was.

    Assumes the layers run as a chain in registration order with positively homogeneous
    activations (ReLU, max-pooling) between them, as in LeNet, VGG and MLP heads; residual
    networks should use ``'first'`` slicing.

    Args:
        student (nn.Module): The narrower model (same module names and types); modified in
            place.
        teacher (nn.Module): The trained model; read only.
        seed (int): Seed of the k-means restarts.

    Returns:
        nn.Module: ``student``.
    """
    t_chain = _layer_chain(teacher)
    s_chain = {name: (module, bn) for name, module, bn in _layer_chain(student)}
    s_names = {name for name, module in student.named_modules()
               if isinstance(module, _LAYER_TYPES)}
    if s_names != {name for name, _, _ in t_chain}:
        raise ValueError("model.student_init_from_teacher='fold': student and teacher do not "
                         'have the same conv/linear layers (names); folding needs the same '
                         'architecture at different widths. Remove student_init_from_teacher '
                         'for other pairs.')
    for name, layer, _ in t_chain:
        if getattr(layer, 'groups', 1) != 1:
            # A grouped (depthwise) conv reads only its group's inputs: merging channels
            # across clusters would mix groups (MobileNets, ResNeXt).
            raise ValueError(f"model.student_init_from_teacher='fold': '{name}' is a grouped "
                             f'convolution (groups={layer.groups}), which folding cannot '
                             "merge; use student_init_from_teacher='first' (the first "
                             'channels of every layer, which keeps the groups) or none for '
                             'this pair.')
    previous: tuple[torch.Tensor, torch.Tensor, int] | None = None  # (assign, scale, clusters)
    for index, (name, t_layer, t_bn) in enumerate(t_chain):
        s_layer, s_bn = s_chain[name]
        if type(s_layer) is not type(t_layer) or (s_bn is None) != (t_bn is None):
            raise ValueError(f"model.student_init_from_teacher='fold': '{name}' differs in "
                             'type or BatchNorm between student and teacher.')
        t_out, s_out = t_layer.weight.size(0), s_layer.weight.size(0)
        if s_out > t_out:
            raise ValueError(f"model.student_init_from_teacher: '{name}' is wider in the "
                             f'student ({s_out}) than in the teacher ({t_out}).')
        weight = _merge_inputs(t_layer.weight.detach().float(), s_layer.weight.size(1),
                               previous, name)
        layer_bias = (t_layer.bias.detach().float() if t_layer.bias is not None
                      else weight.new_zeros(t_out))
        if s_out == t_out:  # nothing to fold: inputs merged, everything else copied
            _copy(s_layer.weight, weight, name)
            if s_layer.bias is not None:
                _copy(s_layer.bias, layer_bias, name)
            if s_bn is not None:
                s_bn.load_state_dict(t_bn.state_dict())
            previous = (torch.arange(t_out), torch.ones(t_out), t_out)
            continue
        if t_bn is not None:
            if not t_bn.affine or t_bn.running_var is None:
                raise ValueError(f"model.student_init_from_teacher='fold': the BatchNorm after "
                                 f"'{name}' needs affine parameters and running statistics.")
            std = (t_bn.running_var + t_bn.eps).sqrt()
            scale = t_bn.weight / std
            affine_w = weight * scale.view(-1, *([1] * (weight.dim() - 1)))
            affine_b = t_bn.bias + scale * (layer_bias - t_bn.running_mean)
        else:
            affine_w, affine_b = weight, layer_bias
        rows = torch.cat([affine_w.flatten(1), affine_b[:, None]], 1)
        norms = rows.norm(dim=1).clamp_min(1e-12)
        next_layer = t_chain[index + 1][1] if index + 1 < len(t_chain) else None
        importance = (norms * _output_norms(next_layer, t_out)).pow(2)
        assign, centroids = weighted_kmeans(rows / norms[:, None], importance, s_out, seed=seed)
        new_w = centroids[:, :-1].reshape(s_out, *weight.shape[1:])
        new_b = centroids[:, -1]
        if s_bn is None:
            _copy(s_layer.weight, new_w, name)
            if s_layer.bias is not None:
                _copy(s_layer.bias, new_b, name)
            elif new_b.abs().max() > 1e-6:
                raise ValueError(f"model.student_init_from_teacher='fold': '{name}' has no "
                                 'bias in the student but the folded channels need one.')
        else:
            # Each member's A x / n has mean (beta - b) / n and std |gamma| / n on the data
            # the teacher's statistics came from; a merged channel gets its members' weighted
            # mean of both (exact when the members are scaled copies of each other).
            member_mean = (t_bn.bias - affine_b) / norms
            member_std = t_bn.weight.abs() * (t_bn.running_var.sqrt() / std) / norms
            share = importance / torch.zeros(s_out).index_add_(0, assign, importance)[assign]
            mean = torch.zeros(s_out).index_add_(0, assign, share * member_mean)
            spread = torch.zeros(s_out).index_add_(0, assign, share * member_std)
            spread = spread.clamp_min(1e-3)
            _copy(s_layer.weight, new_w, name)
            if s_layer.bias is not None:
                s_layer.bias.zero_()
            _copy(s_bn.running_mean, mean, name)
            _copy(s_bn.running_var, (spread.pow(2) - s_bn.eps).clamp_min(1e-6), name)
            _copy(s_bn.weight, (spread.pow(2) - s_bn.eps).clamp_min(1e-6).add(s_bn.eps).sqrt(),
                  name)
            _copy(s_bn.bias, mean + new_b, name)
            if s_bn.num_batches_tracked is not None:
                s_bn.num_batches_tracked.copy_(t_bn.num_batches_tracked)
        previous = (assign, norms, s_out)
    return student


def _copy(target: torch.Tensor, value: torch.Tensor, name: str) -> None:
    if value.shape != target.shape:
        raise ValueError(f"model.student_init_from_teacher='fold': cannot write "
                         f"{tuple(value.shape)} into '{name}' {tuple(target.shape)}.")
    target.copy_(value.to(target.dtype))
