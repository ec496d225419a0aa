"""Train with a config (mirrors mmpretrain's tools/train.py).

Teachers, the real-data reference and every data-free method train with it:

    python tools/train.py configs/teachers/lenet5bn_fmnist.py --work-dir work_dirs/teacher
    python tools/train.py configs/dfad/dfad_lenet5bn_lenet5half_fmnist.py \
        --cfg-options teacher_ckpt=work_dirs/teacher/epoch_15.pth
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from torch.distributed.elastic.multiprocessing.errors import record  # noqa: E402

from mmdfkd.apis import build_runner, finish_distributed, load_config  # noqa: E402
from mmdfkd.apis.cli_types import ConfigOptionsAction  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model (teacher or data-free student)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or from the latest one in '
                        'the work dir when no path is given')
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision on a GPU: every optim wrapper becomes an '
                        'AmpOptimWrapper (pixel optimisers stay float32)')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not validate during training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate with the total batch size')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help='override config settings, e.g. teacher_ckpt=PATH '
                        'train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


# torchrun's failure summary then shows the failed rank's exception and traceback (its
# error file), not "To enable traceback see ..."; outside torchrun it only re-raises.
@record
def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, cfg_options=args.cfg_options, work_dir=args.work_dir,
                      launcher=args.launcher, amp=args.amp, resume=args.resume,
                      no_validate=args.no_validate, auto_scale_lr=args.auto_scale_lr)
    runner = build_runner(cfg)
    runner.train()
    finish_distributed()
    signum = getattr(runner.train_loop, 'stopped_by_signal', None)
    if signum is not None:
        # Stopped early on purpose (checkpoint saved): not a success for a job scheduler.
        sys.exit(128 + signum)


if __name__ == '__main__':
    main()
