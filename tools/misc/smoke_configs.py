"""Train each config for one tiny iteration on this machine's device and report which run.

    python tools/misc/smoke_configs.py CONFIG [CONFIG ...] [--amp] [--val-images N]
        [--teacher-ckpt PATH] [--work-dir DIR] [--out results.jsonl] [--cfg-options K=V ...]

Checks that every recipe builds, synthesises, distils, (optionally) validates and saves a
checkpoint on whatever device mmengine's runner picks: a GPU when there is one, which the
test suite (CPU only) never exercises. No trained teacher or dataset is needed: without
``--teacher-ckpt`` each config's teacher is saved with random weights, and validation is
dropped unless ``--val-images`` is given. ``_base_`` fragments and supervised configs (no
``model.teacher``) are skipped. One line per config is printed (and appended to ``--out`` as
JSON); the exit code is 1 if any config failed.

Example (every shipped Fashion-MNIST and CIFAR recipe, mixed precision):

    python tools/misc/smoke_configs.py configs/*/*_fmnist.py configs/*/*_cifar10*.py --amp

A DiffDFKD recipe whose diffusion model is not on this machine (the CIFAR one reads Stable
Diffusion v1.5 from ``model.synthesizer.pipeline_path``, the Fashion-MNIST one
``work_dirs/ddpm_digits`` from ``python tools/train_ddpm.py``) runs with a tiny random
pipeline of the same layout instead, as the teacher does; its line says so. Where the folder
exists, the real pipeline is what runs.
"""
import argparse
import json
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import Config  # noqa: E402

from mmdfkd.apis.cli_types import ConfigOptionsAction  # noqa: E402
from mmdfkd.apis.smoke import smoke_train  # noqa: E402


def skip_reason(config: str) -> str | None:
    """Why ``config`` is no data-free recipe to run, or ``None``."""
    if '_base_' in osp.normpath(config).split(osp.sep):
        return 'a _base_ fragment'
    model = Config.fromfile(config).get('model') or {}
    if 'teacher' not in model:
        return 'not a data-free config (no model.teacher)'
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='config files to train one tiny '
                        'iteration each')
    parser.add_argument('--teacher-ckpt', help='one teacher for every config (default: '
                        "each config's teacher with random weights)")
    parser.add_argument('--amp', action='store_true', help='as tools/train.py --amp')
    parser.add_argument('--val-images', type=int, default=0,
                        help='validate on the first N test images (0: no validation)')
    parser.add_argument('--work-dir', default='work_dirs/smoke_configs',
                        help='one sub-folder per config is written here')
    parser.add_argument('--out', help='append one JSON line per config to this file')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction, default={},
                        help='overrides applied to every config, as for tools/train.py')
    args = parser.parse_args()
    missing = [c for c in args.configs if not osp.isfile(c)]
    if missing:
        parser.error(f'no such config file(s): {missing}')
    if args.val_images < 0:
        parser.error(f'--val-images takes a number of test images >= 0; got {args.val_images}')

    failed = ran = 0
    for config in args.configs:
        reason = skip_reason(config)
        if reason:
            print(f'[smoke] {config} skipped: {reason}', flush=True)
            continue
        ran += 1
        name = osp.splitext(osp.basename(config))[0]
        result = smoke_train(config, osp.join(args.work_dir, name), args.teacher_ckpt,
                             amp=args.amp, val_images=args.val_images,
                             cfg_options=args.cfg_options)
        result['amp'] = args.amp
        failed += not result['ok']
        status = 'ok' if result['ok'] else 'FAILED ' + result['error']
        if 'random_pipeline' in result:
            status += ' (a random diffusion pipeline stood in for the missing one)'
        print(f"[smoke] {config} device={result['device']} amp={args.amp} "
              f"iter={result['iter']} {result['seconds']} s: {status}", flush=True)
        if not result['ok']:
            print(result['traceback'], file=sys.stderr, flush=True)
        if args.out:
            with open(args.out, 'a') as f:
                f.write(json.dumps({k: v for k, v in result.items() if k != 'traceback'})
                        + '\n')
    print(f'[smoke] {ran - failed}/{ran} configs ran ({len(args.configs) - ran} skipped)')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
