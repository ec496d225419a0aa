"""Plot a run's logged scalars and time its iterations (mmpretrain's tool, for data-free runs).

    python tools/analysis_tools/analyze_logs.py plot_curve LOG [LOG ...] \\
        [--keys accuracy/top1] [--x step|teacher_queries] [--out curve.png] [--csv curve.csv]
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG [LOG ...]

``LOG`` is a run's ``vis_data/scalars.json`` or ``vis_data/<timestamp>.json``, or a work dir:
its latest run's ``scalars.json``, joined to the runs it was resumed from (``--resume``
starts a new timestamped folder; each resumed run's log names the iteration it continued
from, and the earlier run's records up to there come first), so a run that crashed and was
resumed reads as one curve. ``plot_curve`` prints every point it draws and,
with ``--out``, saves the figure. ``--x teacher_queries`` puts the images sent to the teacher
on the x axis: what a black-box user pays for. Validation records carry the count from
``ValidationContextHook`` (a default hook of ``configs/_base_/datafree_runtime.py``).
``cal_train_time`` averages the logged seconds per iteration, per DIP-KD phase when the run
has phases.

mmpretrain's version finds training records by an ``lr`` key, which data-free runs do not
have (theirs are ``student.lr``, ``synthesizer.lr``, ...); here a record is a training record
when it has the ``iter`` that ``LoggerHook`` writes into every training record and never into
a validation one.
"""
import argparse
import csv
import glob
import json
import os.path as osp
import re
import sys
from collections import defaultdict

X_KEYS = ('step', 'teacher_queries')


# mmengine's Runner.resume logs where the resumed run continues.
RESUMED_LINE = re.compile(r'resumed epoch: (\d+), iter: (\d+)')


def resolve_log(path: str) -> str:
    """A json log file, or the latest ``*/vis_data/scalars.json`` under a work dir."""
    return resolve_logs(path)[-1][0]


def resolve_logs(path: str) -> list[tuple[str, tuple[int, int] | None]]:
    """The json logs that make up ``path``, earliest first, each with the ``(epoch, iter)``
    the next one was resumed from (``None`` for the last). A json file is itself; a work dir
    gives its latest run and, while a run was resumed, the run before it."""
    if osp.isdir(path):
        found = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
        if not found:
            raise FileNotFoundError(f'{path} holds no */vis_data/scalars.json: pass a work dir '
                                    'of tools/train.py or the json file itself.')
        chain: list[tuple[str, tuple[int, int] | None]] = [(found[-1], None)]
        for earlier in reversed(found[:-1]):
            resumed_at = _resumed_at(chain[0][0])
            if resumed_at is None:
                break
            chain.insert(0, (earlier, resumed_at))
        return chain
    if not path.endswith('.json') or not osp.isfile(path):
        raise FileNotFoundError(f'{path} is not a json log: pass vis_data/scalars.json, '
                                'vis_data/<timestamp>.json or a work dir.')
    return [(path, None)]


def _resumed_at(scalars: str) -> tuple[int, int] | None:
    """``(epoch, iter)`` a run continued from, read from its text log beside ``vis_data``."""
    run_dir = osp.dirname(osp.dirname(scalars))
    text_log = osp.join(run_dir, f'{osp.basename(run_dir)}.log')
    if not osp.isfile(text_log):
        return None
    with open(text_log, errors='replace') as f:
        for line in f:
            match = RESUMED_LINE.search(line)
            if match:
                return int(match.group(1)), int(match.group(2))
    return None


def load_logs(path: str) -> tuple[str, dict[str, list[dict]]]:
    """The records of ``path`` (see :func:`resolve_logs`) and the name to report them by: a
    resumed run's earlier records up to where it was resumed, then its own."""
    chain = resolve_logs(path)
    records: dict[str, list[dict]] = {'train': [], 'val': []}
    for run, (log, resumed_at) in enumerate(chain):
        part = load_log(log)
        for r in part['train']:
            r['_run'] = run  # which run of the chain wrote it (each starts up anew)
        if resumed_at is not None:
            epoch, iteration = resumed_at
            # Validation records are filed by epoch in epoch-based runs (mmengine's default
            # LoggerHook) and by iteration in data-free runs (log_metric_by_epoch=False).
            by_epoch = any('epoch' in r for r in part['train'])
            part = {'train': [r for r in part['train'] if r['step'] <= iteration],
                    'val': [r for r in part['val']
                            if r['step'] <= (epoch if by_epoch else iteration)]}
        records['train'] += part['train']
        records['val'] += part['val']
    name = chain[-1][0] if len(chain) == 1 else f"{path} ({len(chain)} runs, resumed)"
    return name, records


def load_log(path: str) -> dict[str, list[dict]]:
    """Split a json log into its ``train`` and ``val`` records (one dict per line)."""
    records: dict[str, list[dict]] = {'train': [], 'val': []}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}, line {number} is not json ({e}); is the run still '
                                 'writing it?') from None
            records['train' if 'iter' in record else 'val'].append(record)
    return records


def curve(records: dict[str, list[dict]], key: str, x_key: str, path: str
          ) -> tuple[list[float], list[float], str]:
    """(xs, ys, phase) of ``key`` against ``x_key``, from the records that have ``key``."""
    for phase in ('val', 'train'):
        rows = [r for r in records[phase] if key in r]
        if not rows:
            continue
        missing = [r['step'] for r in rows if x_key not in r]
        if missing:
            hint = (' Validation records get it from ValidationContextHook (a default hook in '
                    "configs/_base_/datafree_runtime.py; add default_hooks.validation_context="
                    "dict(type='ValidationContextHook') to older configs and re-run).")
            raise ValueError(f'{path}: {len(missing)} {phase} record(s) with {key!r} have no '
                             f'{x_key!r} (first at step {missing[0]}).' +
                             (hint if phase == 'val' else ''))
        return [float(r[x_key]) for r in rows], [float(r[key]) for r in rows], phase
    keys = sorted({k for rs in records.values() for r in rs for k in r
                   if not k.startswith('_')} - {'step', 'iter'})
    raise ValueError(f'{path} has no {key!r}; pass --keys from: {", ".join(keys)}')


def plot_curve(args: argparse.Namespace) -> None:
    logs = [load_logs(p) for p in args.json_logs]
    paths = [resolve_log(p) for p in args.json_logs]
    legends = args.legend or [f'{osp.basename(osp.dirname(osp.dirname(osp.dirname(p))))}: {k}'
                              for p in paths for k in args.keys]
    if len(legends) != len(paths) * len(args.keys):
        raise ValueError(f'--legend needs one entry per log and key ({len(paths)} x '
                         f'{len(args.keys)}); got {len(legends)}.')
    rows = []
    curves = []
    for path, records in logs:
        for key in args.keys:
            xs, ys, phase = curve(records, key, args.x, path)
            curves.append((xs, ys))
            rows += [dict(log=path, key=key, phase=phase, **{args.x: x}, value=y)
                     for x, y in zip(xs, ys)]
    for row in rows:
        print(f"{row['log']}  {row['key']} ({row['phase']})  {args.x}={row[args.x]:g}  "
              f"{row['value']:.4g}")
    if args.csv:
        with open(args.csv, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=['log', 'key', 'phase', args.x, 'value'])
            writer.writeheader()
            writer.writerows(rows)
        print(f'wrote {len(rows)} points to {args.csv}')
    if args.out:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        width, height = (int(v) for v in args.window_size.split('*'))
        fig, ax = plt.subplots(figsize=(width, height))
        for (xs, ys), label in zip(curves, legends):
            ax.plot(xs, ys, label=label, linewidth=0.75, marker='.' if len(xs) < 50 else None)
        ax.set_xlabel('teacher queries' if args.x == 'teacher_queries' else 'step')
        ax.legend()
        ax.grid(alpha=0.3)
        if args.title:
            ax.set_title(args.title)
        fig.savefig(args.out, bbox_inches='tight')
        plt.close(fig)
        print(f'saved the curve to {args.out}')


def cal_train_time(args: argparse.Namespace) -> None:
    for log in args.json_logs:
        path, records = load_logs(log)
        train = [r for r in records['train'] if 'time' in r]
        if not train:
            raise ValueError(f'{path} has no training record with a time; was the run '
                             'trained with LoggerHook?')
        print(f'----- train time of {path} -----')
        # The first record of a run (and of each resumed part) includes start-up (building,
        # first batches).
        firsts = {id(next(r for r in train if r.get('_run') == run))
                  for run in {r.get('_run') for r in train}}
        kept = [r for r in train if id(r) not in firsts]
        if args.include_outliers or not kept:
            kept = train
        groups: dict[str, list[float]] = defaultdict(list)
        if all('phase' in r for r in kept):
            from mmdfkd.models.algorithms.dipkd import PHASES
            for r in kept:
                groups[PHASES[int(r['phase'])]].append(r['time'])
        for phase, times in groups.items():
            print(f'phase {phase}: {sum(times) / len(times):.4f} s/iter over '
                  f'{len(times)} records')
        times = [r['time'] for r in kept]
        slowest = max(kept, key=lambda r: r['time'])
        fastest = min(kept, key=lambda r: r['time'])
        print(f"slowest record: step {slowest['step']}, {slowest['time']:.4f} s/iter")
        print(f"fastest record: step {fastest['step']}, {fastest['time']:.4f} s/iter")
        print(f'average iter time: {sum(times) / len(times):.4f} s/iter')


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Analyse json logs of mmdfkd runs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='print, save or plot scalars over steps/queries')
    plot.add_argument('json_logs', nargs='+', help='scalars.json, <timestamp>.json or work dir')
    plot.add_argument('--keys', nargs='+', default=['accuracy/top1'],
                      help='logged scalars to plot (default: accuracy/top1)')
    plot.add_argument('--x', choices=X_KEYS, default='step',
                      help='x axis: the logged step or the teacher queries spent')
    plot.add_argument('--legend', nargs='+', help='one label per log and key')
    plot.add_argument('--title')
    plot.add_argument('--out', help='save the figure here (png, pdf, svg)')
    plot.add_argument('--csv', help='also write the points as csv')
    plot.add_argument('--window-size', default='12*7', help='figure size in inches, W*H')
    timing = sub.add_parser('cal_train_time', help='average seconds per iteration')
    timing.add_argument('json_logs', nargs='+', help='scalars.json, <timestamp>.json or work dir')
    timing.add_argument('--include-outliers', action='store_true',
                        help='keep the first record (start-up) in the averages')
    args = parser.parse_args(argv)
    if args.task == 'plot_curve' and not re.fullmatch(r'\d+\*\d+', args.window_size):
        parser.error(f'--window-size must be W*H in inches, e.g. 12*7; got {args.window_size}')
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        (plot_curve if args.task == 'plot_curve' else cal_train_time)(args)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'analyze_logs.py: {e}')


if __name__ == '__main__':
    sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    main()
