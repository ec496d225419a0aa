"""Record intermediate outputs of named sub-modules with forward hooks."""
import torch
from torch import nn


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
            # Module names follow the backbone (ResNet's layer1..4, CSP/ConvNeXt stages.N):
            # show its children, and the entries of its lists of stages or blocks.
            candidates = [n for n, m in modules.items() if n.startswith('backbone.') and (
                n.count('.') == 1 or (n.count('.') == 2 and isinstance(
                    modules[n.rsplit('.', 1)[0]], nn.ModuleList)))]
            raise ValueError(f'{key}: modules {missing} not found in the '
                             f'{type(getattr(model, "backbone", model)).__name__} model; '
                             f'its modules include {candidates[:24]}')
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
