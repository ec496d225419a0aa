"""Record intermediate outputs of named sub-modules with forward hooks."""
import torch
from torch import nn


class ModuleOutputRecorder:
    """Keep the latest output of each named sub-module of ``model``.

    Args:
        model (nn.Module): Model to observe.
        names (list[str]): Dotted module names as in ``model.named_modules()``, e.g.
            ``'backbone.conv1'`` or ``'backbone.layer3'``.
    """

    def __init__(self, model: nn.Module, names: list[str]) -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            candidates = [n for n in modules if n.count('.') <= 1 and n][:20]
            raise KeyError(f'modules {missing} not found in {type(model).__name__}; '
                           f'some valid names: {candidates}')
        self.names = list(names)
        self._outputs: dict[str, torch.Tensor] = {}
        self._handles = [modules[n].register_forward_hook(self._make_hook(n)) for n in names]

    def _make_hook(self, name: str):

        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self._outputs[name] = output

        return hook

    def outputs(self) -> list[torch.Tensor]:
        """Outputs of the last forward, in the order of ``names``."""
        return [self._outputs[n] for n in self.names]
