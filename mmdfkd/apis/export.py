"""Turn a data-free checkpoint into a student-only mmpretrain checkpoint + config."""
import os
import os.path as osp
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdfkd.apis.config import merge_cfg_options
from mmdfkd.engine.runner.checkpoint_loader import (load_run_checkpoint, run_config_hint,
                                                    weights_mismatch)
from mmdfkd.registry import DATASETS, MODELS, TRANSFORMS
from mmdfkd.utils import resolve_model_reference
from mmdfkd.utils.atomic_save import save_whole

STUDENT_PREFIX = 'student.'


def synthetic_image_shape(cfg: Config, shape: Sequence[int] | None = None
                          ) -> tuple[int, int, int]:
    """``shape`` (C, H, W) when given, else the image size a data-free config synthesises:
    ``model.synthesizer.image_shape``, or its generator's ``channels`` x ``img_size``."""
    if shape:
        if len(shape) != 3:
            raise ValueError(f'--shape takes C H W (e.g. --shape 1 32 32); got {list(shape)}')
        return tuple(shape)
    synthesizer = cfg.model.get('synthesizer') or {}
    generator = synthesizer.get('generator') or {}
    if synthesizer.get('image_shape') is not None:
        return tuple(synthesizer['image_shape'])
    if 'img_size' in generator:  # generator methods: (channels, img_size, img_size)
        return (generator.get('channels', 3), generator['img_size'], generator['img_size'])
    raise ValueError('neither model.synthesizer.image_shape nor model.synthesizer.generator.'
                     'img_size is set: give the input size as --shape C H W.')


def _qualify_mmdfkd_types(cfg: Any) -> Any:
    """Prefix types registered by mmdfkd itself with ``mmdfkd.`` so that a config in
    mmpretrain's scope still finds them (mmpretrain cannot see its child registries)."""
    own = {**MODELS.module_dict, **DATASETS.module_dict, **TRANSFORMS.module_dict}
    if isinstance(cfg, dict):
        out = {k: _qualify_mmdfkd_types(v) for k, v in cfg.items()}
        t = out.get('type')
        if isinstance(t, str) and '.' not in t and t in own:
            out['type'] = f'mmdfkd.{t}'
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_qualify_mmdfkd_types(v) for v in cfg)
    return cfg


def _student_metrics(test_evaluator: Any) -> list:
    """The metrics of ``test_evaluator`` that the student alone can compute: all but
    ``TeacherAgreement``, which needs the teacher (and, on an unlabelled split, is all there
    is: the student is then exported without a test split)."""
    if test_evaluator is None:
        return []
    metrics = test_evaluator if isinstance(test_evaluator, (list, tuple)) else [test_evaluator]
    return [m for m in metrics
            if str(m.get('type', '')).rsplit('.', 1)[-1] != 'TeacherAgreement']


def export_student(config: str, checkpoint: str, out_dir: str,
                   cfg_options: dict | None = None) -> tuple[str, str]:
    """Write ``student.pth`` and ``student_config.py`` into ``out_dir``.

    ``cfg_options`` are the overrides the run was started with (as ``--cfg-options`` of
    ``tools/train.py``): a run that changed its student, or whose test split lies elsewhere,
    exports with the same ones.

    The config is a plain mmpretrain one (``default_scope='mmpretrain'``) with the student
    model, the data preprocessor and the config's test split (none when the config has no
    ``test_dataloader``/``test_evaluator``); it imports mmdfkd only for mmdfkd's backbones
    (e.g. ``LeNet``).

    Returns:
        Paths of the checkpoint and the config.
    """
    cfg = Config.fromfile(config)
    merge_cfg_options(cfg, cfg_options, config)
    if 'student' not in cfg.model:
        raise ValueError(f'{config} is not a data-free config: its model has no model.student '
                         '(export from the config of the run, e.g. a DataFreeDistiller or DIPKD '
                         'one).')
    state = load_run_checkpoint(checkpoint, 'tools/export_student.py')
    state_dict = state.get('state_dict', state)
    student_state = {k[len(STUDENT_PREFIX):]: v for k, v in state_dict.items()
                     if k.startswith(STUDENT_PREFIX)}
    # The exported config is this config's student: its weights must be the checkpoint's,
    # or the exported pair would only fail (or silently test random weights) later.
    init_default_scope(cfg.get('default_scope', 'mmdfkd'))
    problems = weights_mismatch(MODELS.build(cfg.model.student).state_dict(), student_state)
    if problems:
        raise ValueError(f'{checkpoint} was saved by a run whose student differs from '
                         f"{config}'s model.student ({'; '.join(problems)}): "
                         f'tools/export_student.py needs {run_config_hint(checkpoint, state)}.')
    os.makedirs(out_dir, exist_ok=True)
    meta = dict(state.get('meta', {}))
    meta['exported_from'] = osp.abspath(checkpoint)
    ckpt_path = osp.join(out_dir, 'student.pth')
    save_whole({'state_dict': student_state, 'meta': meta}, ckpt_path, 'exported student',
               'Free space, or give another output folder, and export again.')

    # A student named by its config file (cfg_path) is written out in full: the exported
    # config is built by mmpretrain's registry, which does not resolve references.
    model = _qualify_mmdfkd_types(resolve_model_reference(cfg.model.student.to_dict(),
                                                          'model.student'))
    model['data_preprocessor'] = dict(cfg.model.get('data_preprocessor') or {})
    model['data_preprocessor'].pop('type', None)
    # A run without a test split (no data on the machine that distilled) exports the model
    # alone; mmpretrain's tools/test.py then asks for the split the user adds.
    test_split = {}
    evaluators = _student_metrics(cfg.get('test_evaluator'))
    if cfg.get('test_dataloader') is not None and evaluators:
        test_split = dict(
            test_dataloader=_qualify_mmdfkd_types(cfg.test_dataloader.to_dict()),
            test_evaluator=evaluators[0] if len(evaluators) == 1 else evaluators,
            test_cfg=dict())
    student_cfg = Config(dict(
        default_scope='mmpretrain',
        custom_imports=dict(imports=['mmdfkd'], allow_failed_imports=False),
        model=model,
        **test_split,
        default_hooks=dict(logger=dict(type='LoggerHook', interval=50)),
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        visualizer=dict(type='UniversalVisualizer', vis_backends=[dict(type='LocalVisBackend')]),
        log_level='INFO',
    ))
    cfg_path = osp.join(out_dir, 'student_config.py')
    student_cfg.dump(cfg_path)
    return ckpt_path, cfg_path


class _Logits(nn.Module):
    """An mmpretrain classifier's ``forward(images, mode='tensor')`` as a plain forward."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes) of normalised images (N, C, H, W)."""
        return self.classifier(images, mode='tensor')


def export_student_onnx(config: str, student_ckpt: str, onnx_path: str,
                        cfg_options: dict | None = None,
                        shape: Sequence[int] | None = None) -> float:
    """Write the exported student (``student_ckpt``, from :func:`export_student`) as an ONNX
    model: normalised images ``(N, C, H, W)`` in (any batch size), logits out, the input
    size from ``config`` unless ``shape`` is given. onnxruntime then runs it on a random
    batch; returns the largest difference from the torch student's logits.
    """
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError('--onnx needs onnx and onnxruntime: pip install onnx onnxruntime '
                          '(requirements/optional.txt)') from e
    cfg = Config.fromfile(config)
    merge_cfg_options(cfg, cfg_options, config)
    image_shape = synthetic_image_shape(cfg, shape)
    init_default_scope(cfg.get('default_scope', 'mmdfkd'))
    student = MODELS.build(resolve_model_reference(cfg.model.student.to_dict(), 'model.student'))
    student.load_state_dict(torch.load(student_ckpt, map_location='cpu',
                                       weights_only=False)['state_dict'])
    # The wrapper in eval mode too: the exporter restores the wrapper's mode on the way out,
    # which would put a train-mode wrapper's student into train mode (batch BN statistics).
    logits = _Logits(student).eval()
    probe = torch.randn(2, *image_shape, generator=torch.Generator().manual_seed(0))
    # TorchScript-based export: the dynamo exporter needs onnxscript, not a requirement here.
    torch.onnx.export(logits, (probe, ), onnx_path, dynamo=False, input_names=['images'],
                      output_names=['logits'],
                      dynamic_axes={'images': {0: 'batch'}, 'logits': {0: 'batch'}})
    batch = torch.randn(5, *image_shape, generator=torch.Generator().manual_seed(1))
    session = onnxruntime.InferenceSession(onnx_path, providers=['CPUExecutionProvider'])
    answered = torch.from_numpy(session.run(None, {'images': batch.numpy()})[0])
    with torch.no_grad():
        expected = logits(batch)
    diff = float((answered - expected).abs().max())
    if diff > 1e-3:
        raise RuntimeError(f'{onnx_path} answers up to {diff:.3g} away from the torch student '
                           "on the same images: an operator of the student's model did not "
                           'export faithfully; do not deploy this file.')
    return diff
