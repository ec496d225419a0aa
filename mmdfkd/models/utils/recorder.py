"""Record intermediate outputs of named sub-modules with forward hooks."""
import torch
from torch import nn

from .freeze import evaluation_mode


def deepest_output(output: torch.Tensor | tuple | list) -> torch.Tensor:
    """One tensor from a module's output: the last entry of a tuple or list, since an
    mmpretrain backbone returns its ``out_indices`` stages from shallow to deep (and a
    distilled DeiT's stage is itself a pair of tokens)."""
    while isinstance(output, (tuple, list)):
        output = output[-1]
    return output


def stage_names(model: nn.Module) -> list[str]:
    """The module names a config would pick stages by: the backbone's children (an
    mmpretrain classifier's ``backbone``, a ``TorchClassifier``'s wrapped ``model``, else the
    model's own) and the entries of its lists or sequences of stages or blocks (ResNet's
    ``layer1..4``, ``stages.N``, a transformer's ``layers.N``). A backbone may loop over a
    sequence itself, so the sequence's own forward (and hook) never runs; its entries still
    do."""
    modules = dict(model.named_modules())
    body = next((f'{name}.' for name in ('backbone', 'model')
                 if isinstance(getattr(model, name, None), nn.Module)), '')
    depth = body.count('.')
    children = [n for n in modules if n and n.startswith(body) and n.count('.') == depth]
    entries = [n for n in modules if n.startswith(body) and n.count('.') == depth + 1
               and isinstance(modules[n.rsplit('.', 1)[0]], (nn.ModuleList, nn.Sequential))]
    return children + entries  # the stages first: long lists are cut in messages


def output_shapes(model: nn.Module, names: list[str],
                  image_shape: tuple[int, int, int]) -> dict[str, tuple[int, ...]]:
    """Per-image output shape of each named module for images of ``image_shape``: one
    forward of a zero batch in eval mode without gradient (no BN statistic moves). Modules
    that do not run, or give no tensor (e.g. a patch embedding's grid size), are left out."""
    recorder = ModuleOutputRecorder(model, names)
    try:
        with torch.no_grad(), evaluation_mode(model):
            model(torch.zeros(2, *image_shape), mode='tensor')
    finally:
        recorder.remove()
    outputs = {name: deepest_output(recorder._outputs.get(name)) for name in names}
    return {name: tuple(out.shape[1:]) for name, out in outputs.items()
            if isinstance(out, torch.Tensor)}


class ModuleOutputRecorder:
    """Keep the latest output of each named sub-module of ``model``.

    Args:
        model (nn.Module): Model to observe.
        names (list[str]): Dotted module names as in ``model.named_modules()``, e.g.
            ``'backbone.conv1'`` or ``'backbone.layer3'``.
        key (str): The config key the names come from, named in the error for a missing one.
    """

    def __init__(self, model: nn.Module, names: list[str], key: str = 'layers') -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(f'{key}: modules {missing} not found in the '
                             f'{type(getattr(model, "backbone", model)).__name__} model; '
                             f'its modules include {stage_names(model)[:32]}')
        self.names = list(names)
        self._outputs: dict[str, torch.Tensor] = {}
        self._handles = [modules[n].register_forward_hook(self._make_hook(n)) for n in names]

    def _make_hook(self, name: str):

        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self._outputs[name] = output

        return hook

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def outputs(self) -> list[torch.Tensor]:
        """Outputs of the last forward, in the order of ``names``."""
        return [self._outputs[n] for n in self.names]
