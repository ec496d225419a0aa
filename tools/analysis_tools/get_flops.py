"""Parameters and FLOPs of a data-free config's teacher and student (and DIP-KD's primer).

    python tools/analysis_tools/get_flops.py CONFIG [--shape C H W] [--out flops.json]
        [--cfg-options ...]

Mirrors mmpretrain's tool of the same name (mmengine's ``get_model_complexity_info`` does
the counting), for what a user of distillation asks: how much smaller and cheaper the
student is than its teacher. The whole classifier is counted (backbone, neck and head;
mmpretrain's tool counts the backbone only), on one image of the synthesizer's
``image_shape`` (or its generator's ``channels`` x ``img_size``) unless ``--shape`` is
given. Weights are not loaded: the counts depend on the architecture alone, so no
``teacher_ckpt`` is needed. A teacher reached over HTTP or through a Python callable has no
architecture here and is listed as not counted. One multiply-add counts as one FLOP, as in
mmengine; operators mmengine has no counter for (batch norm among them) are left out, and
its warnings name them.
"""
import argparse
import json
import os.path as osp
import sys

import torch
from torch import nn

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.analysis import get_model_complexity_info  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmdfkd.apis import load_config  # noqa: E402
from mmdfkd.apis.export import synthetic_image_shape  # noqa: E402
from mmdfkd.apis.cli_types import ConfigOptionsAction  # noqa: E402
from mmdfkd.registry import MODELS  # noqa: E402
from mmdfkd.utils import is_model_reference  # noqa: E402


class _Logits(nn.Module):
    """A classifier's ``forward(x, mode='tensor')`` (its logits) as a plain forward, which
    mmengine's tracer calls."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.classifier(inputs, mode='tensor')


def _is_classifier(node: object) -> bool:
    # an mmpretrain classifier, a reference to one, or a plain PyTorch one (TorchClassifier)
    return isinstance(node, dict) and (is_model_reference(node) or 'backbone' in node
                                       or node.get('type') == 'TorchClassifier')


def find_classifiers(model_cfg: dict) -> dict[str, dict | None]:
    """The classifier configs of a data-free model, by role; ``None`` for a teacher without
    an architecture (remote or callable)."""
    found: dict[str, dict | None] = {}
    teacher = model_cfg.get('teacher')
    if _is_classifier(teacher):
        found['teacher'] = teacher
    elif isinstance(teacher, dict):
        found['teacher'] = teacher['model'] if _is_classifier(teacher.get('model')) else None
    for role in ('student', 'primer'):
        if _is_classifier(model_cfg.get(role)):
            found[role] = model_cfg[role]
    if 'student' not in found:
        raise ValueError('model.student is not a classifier config (a dict with a backbone, '
                         "dict(cfg_path=...) or dict(type='TorchClassifier', ...)); "
                         "get_flops.py counts a data-free config's teacher and student.")
    return found


def complexity(classifier_cfg: dict, shape: tuple[int, ...]) -> dict:
    model = _Logits(MODELS.build(classifier_cfg)).eval()
    info = get_model_complexity_info(model, inputs=(torch.zeros(1, *shape), ),
                                     show_table=False, show_arch=False)
    return dict(params=int(sum(p.numel() for p in model.parameters())),
                flops=int(info['flops']), activations=int(info['activations']))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path (data-free: teacher and student '
                        'are counted)')
    parser.add_argument('--shape', type=int, nargs='+',
                        help='input C H W (default: model.synthesizer.image_shape)')
    parser.add_argument('--out', help='also write the counts as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, cfg_options=args.cfg_options)
        init_default_scope(cfg.get('default_scope', 'mmdfkd'))
        shape = synthetic_image_shape(cfg, args.shape)
        roles = find_classifiers(cfg.model)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f'get_flops.py: {e}')
    results = {role: None if c is None else complexity(c, shape) for role, c in roles.items()}
    print(f'input shape: {shape} (one image)')
    print(f"{'part':<8} {'params':>12} {'FLOPs':>14} {'activations':>12}")
    for role, r in results.items():
        if r is None:
            print(f'{role:<8} not counted: a remote or callable teacher has no architecture')
        else:
            print(f"{role:<8} {r['params']:>12,} {r['flops']:>14,} {r['activations']:>12,}")
    teacher, student = results.get('teacher'), results['student']
    summary = dict(input_shape=list(shape), **results)
    if teacher is not None:
        summary['student_to_teacher'] = {k: student[k] / teacher[k] for k in student}
        print('student / teacher: params {params:.3f}, FLOPs {flops:.3f}, activations '
              '{activations:.3f}'.format(**summary['student_to_teacher']))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(summary, f, indent=2)
        print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
