"""Benchmark suites and result parsing used by ``tools/benchmark.py``."""
import glob
import json
import os.path as osp
import re
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Row:
    """One benchmark row: a method name, its teacher access level and its config."""
    method: str
    access: str  # 'white-box' | 'soft-label' | 'hard-label' | 'real-data'
    config: str
    cfg_options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Suite:
    teacher_config: str
    rows: tuple[Row, ...] = field(default_factory=tuple)


SUITES: dict[str, Suite] = {
    'fmnist': Suite(
        teacher_config='configs/teachers/lenet5bn_fmnist.py',
        rows=(
            Row('real-data', 'real-data', 'configs/baselines/lenet5half_fmnist_realdata.py'),
            Row('dafl', 'white-box', 'configs/dafl/dafl_lenet5bn_lenet5half_fmnist.py'),
            Row('dfad', 'white-box', 'configs/dfad/dfad_lenet5bn_lenet5half_fmnist.py'),
            Row('zskt', 'white-box', 'configs/zskt/zskt_lenet5bn_lenet5half_fmnist.py'),
            Row('deepinversion', 'white-box',
                'configs/deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py'),
        )),
}


def _latest_scalars(work_dir: str) -> list[dict]:
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return []
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_run_result(work_dir: str) -> dict:
    """Final accuracy, checkpoint and teacher query count of a finished run.

    The accuracy is the last ``accuracy/top1`` the run logged (its final validation); the
    query count comes from the ``teacher_queries`` buffer of the last checkpoint.
    """
    result: dict = {}
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            result['checkpoint'] = f.read().strip()
    accs = [r['accuracy/top1'] for r in _latest_scalars(work_dir) if 'accuracy/top1' in r]
    if accs:
        result['accuracy'] = float(accs[-1])
    if 'checkpoint' in result:
        state = torch.load(result['checkpoint'], map_location='cpu', weights_only=False)
        queries = state.get('state_dict', {}).get('teacher_queries')
        if queries is not None:
            result['teacher_queries'] = int(queries)
    return result


def merge_results(path: str, suite: Suite, previous: list[dict], rows: list[dict]) -> None:
    """Write ``rows`` over the rows of the same methods in ``previous``, in suite order."""
    new = {r['method'] for r in rows}
    merged = [r for r in previous if r['method'] not in new] + rows
    order = {r.method: i for i, r in enumerate(suite.rows)}
    merged.sort(key=lambda r: order.get(r['method'], len(order)))
    with open(path, 'w') as f:
        json.dump(merged, f, indent=2)


def format_markdown(suite: str, rows: list[dict], commands: str | list[str]) -> str:
    commands = [commands] if isinstance(commands, str) else commands
    lines = [f'### Suite `{suite}`', '']
    lines += [f'Command: `{c}`' + ('  ' if i < len(commands) - 1 else '')
              for i, c in enumerate(commands)]
    lines += ['',
             '| method | access | teacher acc (%) | student acc (%) | wall (s) | teacher '
             'queries | peak RSS (MB) |', '|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f"| {r['method']} | {r['access']} | {r['teacher_acc']:.2f} | "
                     f"{r['student_acc']:.2f} | {r['wall_s']:.0f} | {r['teacher_queries']} | "
                     f"{r['peak_rss_mb']:.0f} |")
    return '\n'.join(lines) + '\n'


def update_docs(path: str, suite: str, table: str) -> None:
    """Replace (or append) the suite's section between markers in a markdown file."""
    begin, end = f'<!-- suite:{suite}:begin -->', f'<!-- suite:{suite}:end -->'
    block = f'{begin}\n{table}{end}'
    text = open(path).read() if osp.isfile(path) else '# Benchmarks\n'
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + '.*?' + re.escape(end), lambda _: block, text,
                      flags=re.S)
    else:
        text = text.rstrip('\n') + '\n\n' + block + '\n'
    with open(path, 'w') as f:
        f.write(text)
