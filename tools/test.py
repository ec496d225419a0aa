"""Evaluate a checkpoint on the config's test split (mirrors mmpretrain's tools/test.py).

For a data-free config the student is evaluated; for a teacher config, the teacher.

    python tools/test.py CONFIG CHECKPOINT [--out results.json]
    python tools/test.py CONFIG CHECKPOINT --out preds.pkl --out-item pred   # per-image scores
    python tools/test.py CONFIG CHECKPOINT --show-dir vis --interval 100     # drawn predictions
    python tools/test.py CONFIG CHECKPOINT --agreement   # + agreement with the teacher's top-1
"""
import argparse
import copy
import json
import os
import os.path as osp
import sys

from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.evaluator import DumpResults

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from torch.distributed.elastic.multiprocessing.errors import record  # noqa: E402

from mmdfkd.apis import finish_distributed, load_config  # noqa: E402
from mmdfkd.apis.cli_types import ConfigOptionsAction  # noqa: E402
from mmdfkd.apis.evaluate import build_test_runner, prepare_test_config  # noqa: E402
from mmdfkd.registry import MODELS  # noqa: E402


def enable_visualization(cfg: Config, show_dir: str, interval: int) -> None:
    """Switch the config's ``VisualizationHook`` on, drawing into ``show_dir``."""
    if interval < 1:
        raise SystemExit(f'--interval must be >= 1; got {interval}.')
    hook = cfg.get('default_hooks', {}).get('visualization')
    if hook is None:
        raise SystemExit('--show-dir needs a VisualizationHook: add default_hooks.visualization='
                         "dict(type='PredictionVisualizationHook') to the config (configs/_base_/"
                         'default_runtime.py has one).')
    # Small images (28-32 px) are enlarged so the drawn labels stay readable.
    hook.setdefault('resize', 224)
    hook.update(enable=True, out_dir=show_dir, interval=interval)


def add_teacher_agreement(cfg: Config) -> None:
    """Report the student's top-1 agreement with the teacher (``TeacherAgreement``, per
    class too) next to the config's metrics; the teacher answers every test image (counted
    as queries)."""
    if 'student' not in cfg.model:
        raise SystemExit('--agreement compares a data-free run\'s student with its teacher; '
                         f'this config\'s model ({cfg.model.get("type")}) has no student.')
    cfg.model.eval_teacher_agreement = True
    metrics = cfg.test_evaluator
    metrics = list(metrics) if isinstance(metrics, (list, tuple)) else [metrics]
    if not any(str(m.get('type', '')).rsplit('.', 1)[-1] == 'TeacherAgreement'
               for m in metrics):
        metrics.append(dict(type='TeacherAgreement', per_class=True))
    cfg.test_evaluator = metrics


def json_metrics(metrics: dict) -> dict:
    """The metrics as JSON values: numbers, and lists for per-class metrics."""
    def plain(value: object) -> float | list[float]:
        if isinstance(value, (list, tuple)) or getattr(value, 'ndim', 0) > 0:
            return [float(v) for v in value]
        return float(value)
    return {k: plain(v) for k, v in metrics.items()}


def use_tta_pipeline(cfg: Config) -> None:
    """mmpretrain's default test-time augmentation unless the config sets its own: the
    test pipeline's last step (``PackInputs``) becomes a ``TestTimeAug`` over the image and
    its horizontal mirror, whose scores ``AverageClsScoreTTA`` averages."""
    cfg.setdefault('tta_model', dict(type='mmpretrain.AverageClsScoreTTA'))
    if 'tta_pipeline' not in cfg:
        pipeline = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
        pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.0), dict(type='RandomFlip', prob=0.0)],
            [pipeline[-1]]])
        cfg.tta_pipeline = pipeline
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline


# torchrun's failure summary then shows the failed rank's exception and traceback (its
# error file), not "To enable traceback see ..."; outside torchrun it only re-raises.
@record
def main() -> None:
    parser = argparse.ArgumentParser(description='Test a model on the real test split')
    parser.add_argument('config', help='test config file path (a data-free config evaluates its '
                        'student)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='folder for the test logs')
    parser.add_argument('--out', help='write the metrics as JSON here (or, with --out-item '
                        'pred, every image\'s prediction as a .pkl)')
    parser.add_argument('--out-item', choices=['metrics', 'pred'], default='metrics',
                        help='what --out holds: the metrics (JSON, the default) or the '
                        'predictions (pickle of dicts with pred_score, pred_label, gt_label, '
                        'as mmpretrain\'s tools/test.py dumps them)')
    parser.add_argument('--show-dir', help='draw the prediction (and ground truth) on test '
                        'images into this folder, as mmpretrain\'s tools/test.py does')
    parser.add_argument('--interval', type=int, default=1,
                        help='with --show-dir, draw every INTERVAL-th test image')
    parser.add_argument('--tta', action='store_true',
                        help='test-time augmentation: average the scores of each image and its '
                        'mirror image (the config\'s tta_model / tta_pipeline when it has '
                        'them), as mmpretrain\'s --tta does')
    parser.add_argument('--agreement', action='store_true',
                        help='also report how often the student gives the teacher\'s top-1 '
                        'class (TeacherAgreement, overall and per teacher class; each test image '
                        'is one teacher query)')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    args = parser.parse_args()
    cfg = load_config(args.config, cfg_options=args.cfg_options, launcher=args.launcher,
                      work_dir=args.work_dir)
    try:
        prepare_test_config(cfg, args.config, args.checkpoint)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    if args.out_item == 'pred':
        if not args.out or not args.out.endswith(('.pkl', '.pickle')):
            raise SystemExit('--out-item pred dumps the predictions with pickle: give --out '
                             'a .pkl or .pickle file.')
    if args.show_dir is not None:
        enable_visualization(cfg, args.show_dir, args.interval)
    if args.tta:
        use_tta_pipeline(cfg)
    if args.agreement:
        add_teacher_agreement(cfg)
    runner = build_test_runner(cfg, args.checkpoint, 'tools/test.py')
    if args.tta:
        # Wrapped after the build: the data-free runner builds and checks the distiller
        # itself; mmengine loads the checkpoint through the wrapper into its module.
        runner.model = MODELS.build(dict(cfg.tta_model, module=runner.model))
    if args.out_item == 'pred':
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    # Every rank gets the gathered metrics; one writes them (tools/dist_test.sh).
    if args.out and args.out_item == 'metrics' and is_main_process():
        # The evaluation is done by now: a missing folder must not lose its numbers.
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(json_metrics(metrics), f, indent=2)
    # As in tools/train.py: a rank that exits while another still uses the gloo connections
    # aborts (SIGABRT) at the end of a good evaluation.
    finish_distributed()


if __name__ == '__main__':
    main()
