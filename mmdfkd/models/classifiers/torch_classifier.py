"""Plain PyTorch classifiers (torchvision, timm, your own modules) as mmpretrain classifiers."""
import torch
import torch.nn.functional as F
from mmpretrain.models.classifiers import BaseClassifier
from mmpretrain.structures import DataSample
from torch import nn

from mmdfkd.registry import MODELS
from mmdfkd.utils.named_callable import import_named_callable

# The wrapped module's attribute name; its state-dict keys go without it (see below).
_MODEL = 'model'


@MODELS.register_module()
class TorchClassifier(BaseClassifier):
    """A plain PyTorch image classifier as an mmpretrain classifier, so that a torchvision,
    timm or hand-written model can be the teacher (at any access level) or the student.

    The wrapped module maps normalised images ``(N, C, H, W)`` to logits ``(N, K)``. Its
    state-dict keys are the module's own (no prefix is added), so ``teacher_ckpt`` may be the
    ``.pth`` of a plain ``model.state_dict()`` (or a dict holding it under ``'state_dict'``),
    and the student that ``tools/export_student.py`` writes loads back into the plain module
    with ``load_state_dict``. Methods that read penultimate features (CMI's contrast on
    features, CPSC-DFKD's SupCon, DAFL's activation term) get the *input* of
    ``feature_layer``, the final linear layer.

    Args:
        model (str | nn.Module): A factory named ``'package.module:function'``
            (``'torchvision.models:resnet18'``), or the module itself (Python configs).
        model_kwargs (dict, optional): Keyword arguments of the factory, e.g.
            ``dict(num_classes=10)``.
        feature_layer (str, optional): Name of the final linear layer (``'fc'`` for
            torchvision's ResNets, ``'classifier.3'`` for MobileNetV3); its input is the
            penultimate feature vector and its ``out_features`` the class count. Defaults to
            the module's last ``nn.Linear``.
        loss (dict): Classification loss for ``mode='loss'`` (training on real data).
        data_preprocessor (dict, optional): mmpretrain ``ClsDataPreprocessor`` config, for
            training or testing it on real data; a data-free run normalises with its own.
        init_cfg (dict, optional): Initialisation config (the module keeps its own
            initialisation otherwise).
    """

    def __init__(self, model: str | nn.Module, model_kwargs: dict | None = None,
                 feature_layer: str | None = None,
                 loss: dict | None = None, data_preprocessor: dict | None = None,
                 init_cfg: dict | None = None) -> None:
        data_preprocessor = dict(data_preprocessor or {})
        data_preprocessor.setdefault('type', 'mmpretrain.ClsDataPreprocessor')
        super().__init__(init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        if isinstance(model, nn.Module):
            if model_kwargs:
                raise ValueError('TorchClassifier model_kwargs are the arguments of a factory; '
                                 'a ready nn.Module takes none')
            module = model
        else:
            factory = import_named_callable(model, 'TorchClassifier model',
                                            'torchvision.models:resnet18')
            try:
                module = factory(**(model_kwargs or {}))
            except TypeError as e:  # a misspelt or missing argument of the factory
                raise ValueError(f"TorchClassifier model_kwargs {model_kwargs!r} do not fit "
                                 f"'{model}': {e}") from e
            if not isinstance(module, nn.Module):
                raise ValueError(f"TorchClassifier model '{model}' returned a "
                                 f'{type(module).__name__}, not an nn.Module')
        setattr(self, _MODEL, module)
        linears = [name for name, m in module.named_modules() if isinstance(m, nn.Linear)]
        if feature_layer is None:
            if not linears:
                raise ValueError('TorchClassifier found no nn.Linear in the model: set '
                                 'feature_layer to the name of its final (classifier) layer')
            feature_layer = linears[-1]
        layer = dict(module.named_modules()).get(feature_layer)
        if layer is None:
            raise ValueError(f"TorchClassifier feature_layer '{feature_layer}' is not a module "
                             f'of the model; its linear layers are {linears}')
        self.feature_layer = feature_layer
        self.num_classes = getattr(layer, 'out_features', None)
        self.loss_module = MODELS.build(loss or dict(type='CrossEntropyLoss', loss_weight=1.0))
        self.register_state_dict_post_hook(_drop_model_prefix)
        self.register_load_state_dict_pre_hook(_add_model_prefix)

    def forward(self, inputs: torch.Tensor, data_samples: list[DataSample] | None = None,
                mode: str = 'tensor') -> torch.Tensor | dict | list[DataSample]:
        """Logits (``'tensor'``), the loss against ``data_samples`` (``'loss'``) or
        ``DataSample`` predictions (``'predict'``), as mmpretrain's classifiers answer."""
        if mode == 'tensor':
            return getattr(self, _MODEL)(inputs)
        if mode == 'loss':
            logits = getattr(self, _MODEL)(inputs)
            if 'gt_score' in data_samples[0]:
                target = torch.stack([s.gt_score for s in data_samples])
            else:
                target = torch.cat([s.gt_label for s in data_samples])
            return {'loss': self.loss_module(logits, target)}
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def predict(self, inputs: torch.Tensor,
                data_samples: list[DataSample] | None = None) -> list[DataSample]:
        """Softmax scores and top-1 labels, in ``data_samples`` when given."""
        scores = F.softmax(getattr(self, _MODEL)(inputs), dim=1).detach()
        labels = scores.argmax(dim=1, keepdim=True)
        samples = data_samples or [DataSample() for _ in range(scores.size(0))]
        for sample, score, label in zip(samples, scores, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return samples

    def logits_and_features(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the penultimate features (the input of ``feature_layer``, flattened)."""
        captured: list[torch.Tensor] = []
        layer = getattr(self, _MODEL).get_submodule(self.feature_layer)
        handle = layer.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
        try:
            logits = getattr(self, _MODEL)(inputs)
        finally:
            handle.remove()
        return logits, captured[-1].flatten(1)

    def extract_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The penultimate features (see :meth:`logits_and_features`)."""
        return self.logits_and_features(inputs)[1]


def _drop_model_prefix(module: nn.Module, state_dict: dict, prefix: str,
                       local_metadata: dict) -> None:
    # ``<prefix>model.conv1.weight`` -> ``<prefix>conv1.weight``: the plain module's keys.
    inner = f'{prefix}{_MODEL}.'
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _add_model_prefix(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict,
                      strict: bool, missing_keys: list, unexpected_keys: list,
                      error_msgs: list) -> None:
    inner = f'{prefix}{_MODEL}.'
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)
