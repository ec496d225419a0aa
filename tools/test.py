"""Evaluate a checkpoint on the config's test split (mirrors mmpretrain's tools/test.py).

For a data-free config the student is evaluated; for a teacher config, the teacher.

    python tools/test.py CONFIG CHECKPOINT [--out results.json]
"""
import argparse
import json
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdfkd.apis import build_runner, load_config  # noqa: E402
from mmdfkd.apis.cli_types import ConfigOptionsAction  # noqa: E402
from mmdfkd.engine.runner.checkpoint_loader import check_checkpoint_fits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description='Test a model on the real test split')
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--work-dir', help='folder for the test logs')
    parser.add_argument('--out', help='write the metrics as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none')
    args = parser.parse_args()
    cfg = load_config(args.config, cfg_options=args.cfg_options, launcher=args.launcher,
                      work_dir=args.work_dir)
    missing = [k for k in ('test_dataloader', 'test_evaluator') if cfg.get(k) is None]
    if missing:
        raise SystemExit(f'{args.config} has no {" / ".join(missing)}: there is no real test '
                         'split to evaluate on. Add them (e.g. from '
                         'configs/_base_/datasets/cifar10_test_only.py).')
    if cfg.get('teacher_ckpt') is not None and not osp.isfile(str(cfg.teacher_ckpt)):
        # The teacher's weights are inside the distillation checkpoint too.
        cfg.teacher_ckpt = args.checkpoint
    cfg.load_from = args.checkpoint
    cfg.resume = False
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, args.checkpoint, 'tools/test.py')
    metrics = runner.test()
    if args.out:
        # The evaluation is done by now: a missing folder must not lose its numbers.
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump({k: float(v) for k, v in metrics.items()}, f, indent=2)


if __name__ == '__main__':
    main()
