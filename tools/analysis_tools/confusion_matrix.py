"""Confusion matrix and per-class accuracy of a student (or teacher) on the real test split.

    python tools/analysis_tools/confusion_matrix.py CONFIG CHECKPOINT [--show-path cm.png]
        [--include-values] [--out cm.json] [--cfg-options ...]
    python tools/analysis_tools/confusion_matrix.py CONFIG preds.pkl   # from tools/test.py
        # --out preds.pkl --out-item pred, without running the model again

Mirrors mmpretrain's tool of the same name (its ``ConfusionMatrix`` metric does the counting
and the drawing). A data-free student's errors are rarely spread evenly: the classes its
synthetic images cover badly show up here as rows with low accuracy, and the cells beside them
name the classes they are taken for.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmpretrain.evaluation import ConfusionMatrix  # noqa: E402

from mmdfkd.apis import load_config  # noqa: E402
from mmdfkd.apis.cli_types import ConfigOptionsAction  # noqa: E402
from mmdfkd.apis.evaluate import build_test_runner, prepare_test_config  # noqa: E402


def confusion_from_predictions(path: str, num_classes: int | None) -> torch.Tensor:
    """The matrix (rows: ground truth, columns: prediction) of a ``tools/test.py --out-item
    pred`` dump."""
    with open(path, 'rb') as f:
        results = pickle.load(f)
    if not results or not all(isinstance(r, dict) and {'pred_label', 'gt_label'} <= r.keys()
                              for r in results):
        raise ValueError(f'{path} holds no predictions with pred_label and gt_label: write it '
                         'with tools/test.py CONFIG CHECKPOINT --out preds.pkl --out-item pred.')
    pred = torch.cat([torch.as_tensor(r['pred_label']).view(-1) for r in results])
    target = torch.cat([torch.as_tensor(r['gt_label']).view(-1) for r in results])
    if num_classes is None:
        num_classes = results[0].get('num_classes')
    return ConfusionMatrix.calculate(pred, target, num_classes=num_classes)


def per_class_accuracy(matrix: torch.Tensor) -> torch.Tensor:
    """Recall of each class in percent (NaN for a class without test images)."""
    matrix = matrix.double()
    return matrix.diag() / matrix.sum(1) * 100


def main() -> None:
    parser = argparse.ArgumentParser(description='Confusion matrix on the real test split')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('ckpt_or_result', help='a checkpoint, or the .pkl predictions of '
                        'tools/test.py --out-item pred')
    parser.add_argument('--work-dir', help='folder for the test logs')
    parser.add_argument('--out', help='write the matrix, per-class accuracy and classes as JSON')
    parser.add_argument('--show-path', help='draw the matrix into this image file')
    parser.add_argument('--include-values', action='store_true',
                        help='write the counts into the drawn cells')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    args = parser.parse_args()

    cfg = load_config(args.config, cfg_options=args.cfg_options, work_dir=args.work_dir)
    if args.ckpt_or_result.endswith(('.pkl', '.pickle')):
        classes = None
        matrix = confusion_from_predictions(args.ckpt_or_result, None)
    else:
        try:
            prepare_test_config(cfg, args.config, args.ckpt_or_result)
        except ValueError as err:
            raise SystemExit(str(err)) from None
        cfg.test_evaluator = dict(type='mmpretrain.ConfusionMatrix')
        runner = build_test_runner(cfg, args.ckpt_or_result,
                                   'tools/analysis_tools/confusion_matrix.py')
        matrix = runner.test()['confusion_matrix/result']
        classes = runner.test_dataloader.dataset.metainfo.get('classes')
    if classes is None:
        # the class names of the config's test split, read without loading its images
        from mmengine.registry import init_default_scope

        from mmdfkd.registry import DATASETS
        init_default_scope(cfg.get('default_scope', 'mmdfkd'))
        dataset_cfg = dict(cfg.test_dataloader.dataset, lazy_init=True)
        classes = DATASETS.build(dataset_cfg).metainfo.get('classes')
    num_classes = matrix.size(0)
    if classes is None or len(classes) != num_classes:
        classes = [str(i) for i in range(num_classes)]

    accuracy = per_class_accuracy(matrix)
    overall = matrix.diag().sum().item() / matrix.sum().item() * 100
    width = max(len(c) for c in classes)
    print(f'{"class":<{width}}  acc (%)  most taken for')
    for i, name in enumerate(classes):
        row = matrix[i].clone()
        row[i] = -1
        confused = classes[int(row.argmax())] if row.max() > 0 else '-'
        count = int(row.max().clamp(min=0))
        print(f'{name:<{width}}  {accuracy[i].item():7.2f}  {confused} ({count})')
    print(f'{"overall":<{width}}  {overall:7.2f}  ({int(matrix.sum())} images)')

    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump({'classes': list(classes), 'confusion_matrix': matrix.tolist(),
                       'per_class_accuracy': accuracy.tolist(), 'accuracy': overall}, f,
                      indent=2)
    if args.show_path:
        import matplotlib
        matplotlib.use('Agg')
        figure = ConfusionMatrix.plot(matrix, include_values=args.include_values,
                                      classes=list(classes), show=False)
        os.makedirs(osp.dirname(osp.abspath(args.show_path)), exist_ok=True)
        figure.savefig(args.show_path, bbox_inches='tight')


if __name__ == '__main__':
    main()
