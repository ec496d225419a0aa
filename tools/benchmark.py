"""Run a named benchmark suite and write ``OUT/results.json`` + ``OUT/results.md``.

    python tools/benchmark.py --suite fmnist --out work_dirs/bench [--budget-s 900]

Each row trains one method through ``tools/train.py`` in its own process and records the
teacher's and student's accuracy on the real test split, the student's accuracy after
``--acc-at-s`` seconds of training (default 180, measured by ``TimedValidationHook``), wall
seconds, teacher queries (images sent to the teacher) and the process's peak RSS.
``--acc-at-s-only`` stops each row right after that mark and updates only that column (a
run follows the same trajectory up to the mark whatever happens after it). The teacher is
trained first when its checkpoint is missing. ``--docs docs/benchmarks.md`` also rewrites
that suite's section of the docs page and the results tables of ``configs/*/README.md``.
``--seeds 0,1,2`` runs every selected row once per seed (``randomness.seed``; work dirs
``OUT/METHOD/seed_S``) and records the mean with each seed's accuracy, so a difference
between rows can be read against the seed-to-seed spread.
"""
import argparse
import contextlib
import json
import os
import os.path as osp
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmdfkd.apis.cli_types import positive_int, positive_number  # noqa: E402
from mmdfkd.benchmark import (SUITES, combine_seed_runs, format_markdown,  # noqa
                              merge_results, read_docs_section, read_run_result,
                              timed_validation_options, update_config_readmes,
                              update_docs)


def run_train(config: str, work_dir: str, cfg_options: list[str]) -> dict:
    """Train in a child process; return wall seconds and the child's own peak RSS."""
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir]
    if cfg_options:
        cmd += ['--cfg-options', *cfg_options]
    os.makedirs(work_dir, exist_ok=True)
    start = time.perf_counter()
    with open(osp.join(work_dir, 'benchmark_stdout.log'), 'w') as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        # wait4 gives this child's rusage alone (RUSAGE_CHILDREN would mix all rows).
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f'training failed ({code}); see {work_dir}/benchmark_stdout.log\n'
                           f'command: {" ".join(cmd)}')
    return dict(wall_s=wall, peak_rss_mb=usage.ru_maxrss / 1024, command=' '.join(
        ['python', 'tools/train.py', osp.relpath(config, ROOT), '--work-dir', work_dir] +
        (['--cfg-options', *cfg_options] if cfg_options else [])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--suite', required=True, choices=sorted(SUITES),
                        help='the suite whose rows to run (docs/benchmarks.md has each table)')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--budget-s', type=positive_number, default=None,
                        help='wall-clock budget per data-free row (train_cfg.time_budget_s)')
    parser.add_argument('--methods', default=None,
                        help='comma-separated subset of the suite rows to run')
    parser.add_argument('--teacher-ckpt', default=None,
                        help='use this teacher checkpoint instead of training one')
    parser.add_argument('--max-iters', type=positive_int, default=None,
                        help='override train_cfg.max_iters of data-free rows (smoke runs)')
    parser.add_argument('--max-epochs', type=positive_int, default=None,
                        help='override the epochs of supervised rows (teacher, real data)')
    parser.add_argument('--acc-at-s', type=positive_number, default=180.0,
                        help='also record the student accuracy after this many seconds')
    parser.add_argument('--acc-at-s-only', action='store_true',
                        help='stop rows right after --acc-at-s; update only that column')
    parser.add_argument('--docs', default=None,
                        help='also write the table into this markdown file (suite section)')
    parser.add_argument('--seeds', default=None, type=parse_seeds,
                        help='comma-separated randomness seeds: run each row once per seed '
                             'and record the mean and every seed (e.g. 0,1,2)')
    args = parser.parse_args()
    if args.seeds and args.acc_at_s_only:
        parser.error('--seeds records whole runs; run --acc-at-s-only without --seeds')
    suite = SUITES[args.suite]
    # Checked before anything runs: a typo must not first cost a teacher's training.
    wanted = set(args.methods.split(',')) if args.methods else None
    if wanted is not None and wanted - {r.method for r in suite.rows}:
        parser.error(f'unknown --methods {sorted(wanted - {r.method for r in suite.rows})}; '
                     f'suite {args.suite} has {[r.method for r in suite.rows]}')
    if args.teacher_ckpt is not None and not osp.isfile(args.teacher_ckpt):
        parser.error(f'--teacher-ckpt {args.teacher_ckpt} does not exist (leave it out to '
                     f'train the suite\'s teacher, {suite.teacher_config}, into OUT/teacher)')

    out = osp.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    epoch_opts = ([f'train_cfg.max_epochs={args.max_epochs}'] if args.max_epochs else [])

    teacher_ckpt = args.teacher_ckpt
    if teacher_ckpt is None:
        teacher_dir = osp.join(out, 'teacher')
        teacher_ckpt = read_run_result(teacher_dir).get('checkpoint')
        if not teacher_ckpt:
            print(f'[benchmark] training the teacher ({suite.teacher_config})', flush=True)
            run_train(osp.join(ROOT, suite.teacher_config), teacher_dir, epoch_opts)
            teacher_ckpt = read_run_result(teacher_dir)['checkpoint']
    teacher_acc = _test_accuracy(suite.teacher_config, teacher_ckpt, osp.join(out, 'teacher_test'))
    print(f'[benchmark] teacher {teacher_ckpt}: {teacher_acc:.2f}%', flush=True)

    invocation = ' '.join(['python', 'tools/benchmark.py'] + sys.argv[1:])
    # Rows of earlier runs into the same --out are kept, so a suite can be completed row by row.
    results_path = osp.join(out, 'results.json')
    previous = json.load(open(results_path)) if osp.isfile(results_path) else []
    commands_path = osp.join(out, 'commands.json')
    commands = json.load(open(commands_path)) if osp.isfile(commands_path) else []
    if not previous and args.docs:
        # A fresh --out (e.g. a new checkout): start from the rows already documented.
        previous, documented = read_docs_section(args.docs, args.suite)
        commands = commands or documented
    commands = [c for c in commands if c != invocation] + [invocation]
    rows = []
    for row in suite.rows:
        if wanted is not None and row.method not in wanted:
            continue
        base_dir = osp.join(out, row.method + ('_at_mark' if args.acc_at_s_only else ''))
        opts = list(row.cfg_options) + timed_validation_options(args.acc_at_s,
                                                                args.acc_at_s_only)
        if row.access == 'real-data':
            opts += epoch_opts
        else:
            opts.append(f'teacher_ckpt={teacher_ckpt}')
            if args.budget_s is not None:
                opts.append(f'train_cfg.time_budget_s={args.budget_s}')
            if args.max_iters is not None:
                opts += [f'train_cfg.max_iters={args.max_iters}',
                         f'train_cfg.val_interval={args.max_iters}']
        seed_rows = []
        for seed in args.seeds or [None]:
            work_dir, run_opts = base_dir, list(opts)
            if seed is not None:
                work_dir = osp.join(base_dir, f'seed_{seed}')
                run_opts.append(f'randomness.seed={seed}')
            label = row.method + ('' if seed is None else f' (seed {seed})')
            print(f'[benchmark] {label}: training', flush=True)
            if row.serve:
                with served_teacher(suite.teacher_config, teacher_ckpt, work_dir) as url:
                    run_opts += ['model.teacher.model=None', 'model.teacher.checkpoint=None',
                                 f'model.teacher.url={url}']
                    run = run_train(osp.join(ROOT, row.config), work_dir, run_opts)
            else:
                run = run_train(osp.join(ROOT, row.config), work_dir, run_opts)
            result = read_run_result(work_dir, args.acc_at_s)
            at_mark = dict(student_acc_at_mark=result.get('accuracy_at_mark'),
                           acc_at_s=args.acc_at_s, command_at_mark=run['command'])
            if args.acc_at_s_only:
                seed_rows.append(dict(method=row.method, access=row.access, **at_mark))
            else:
                seed_rows.append(dict(
                    method=row.method, access=row.access, teacher_acc=teacher_acc,
                    student_acc=result['accuracy'], wall_s=round(run['wall_s'], 1),
                    teacher_queries=result.get('teacher_queries', 0),
                    peak_rss_mb=round(run['peak_rss_mb'], 1), command=run['command'],
                    **at_mark))
                if args.suite == 'fmnist-diffusion' and result.get('pool_images'):
                    # End-to-end synthesis throughput: pooled images over the run's wall time.
                    seed_rows[-1]['images_per_s'] = round(
                        result['pool_images'] / run['wall_s'], 3)
                if seed is not None:
                    seed_rows[-1]['seed'] = seed
            print(f"[benchmark] {label}: {result.get('accuracy', float('nan')):.2f}% in "
                  f"{run['wall_s']:.0f}s; {at_mark['student_acc_at_mark']}% at "
                  f'{args.acc_at_s:g}s', flush=True)
        rows.append(combine_seed_runs(seed_rows) if args.seeds else seed_rows[0])
        merge_results(results_path, suite, previous, rows, fields_only=args.acc_at_s_only)
    merge_results(results_path, suite, previous, rows, fields_only=args.acc_at_s_only)
    with open(commands_path, 'w') as f:
        json.dump(commands, f, indent=2)
    table = format_markdown(args.suite, json.load(open(results_path)), commands)
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write(table)
    if args.docs:
        update_docs(args.docs, args.suite, table)
        # The config folders' READMEs show their rows of the repository's own docs page
        # (another --docs file, e.g. a scratch copy, leaves them alone).
        repo_docs = osp.join(ROOT, 'docs', 'benchmarks.md')
        if osp.isfile(repo_docs) and osp.samefile(args.docs, repo_docs):
            for readme in update_config_readmes(repo_docs, ROOT):
                print(f'updated {osp.relpath(readme, ROOT)}')
    print(table)


def parse_seeds(text: str) -> list[int]:
    """``'0,1,2'`` -> ``[0, 1, 2]`` (argparse type of ``--seeds``)."""
    try:
        seeds = [int(part) for part in text.split(',') if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'--seeds takes comma-separated integers such as 0,1,2; got {text!r}') from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(
            f'--seeds needs distinct non-negative integers such as 0,1,2; got {text!r}')
    return seeds


@contextlib.contextmanager
def served_teacher(config: str, checkpoint: str, work_dir: str) -> Iterator[str]:
    """Serve the teacher with tools/serve_teacher.py on a free local port; yield its URL."""
    import httpx
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    os.makedirs(work_dir, exist_ok=True)
    url = f'http://127.0.0.1:{port}'
    with open(osp.join(work_dir, 'teacher_server.log'), 'w') as log:
        server = subprocess.Popen([sys.executable, osp.join(ROOT, 'tools', 'serve_teacher.py'),
                                   osp.join(ROOT, config), checkpoint, '--port', str(port)],
                                  stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            deadline = time.time() + 120
            while True:
                try:
                    if httpx.get(f'{url}/health', timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError(f'teacher server did not start; see {log.name}')
                time.sleep(0.5)
            yield url
            stats = httpx.get(f'{url}/health', timeout=5).json()
            print(f'[benchmark] teacher server: {stats}', flush=True)
            with open(osp.join(work_dir, 'teacher_server_stats.json'), 'w') as f:
                json.dump(stats, f)
        finally:
            server.terminate()
            server.wait()


def _test_accuracy(config: str, checkpoint: str, work_dir: str) -> float:
    out_json = osp.join(work_dir, 'metrics.json')
    os.makedirs(work_dir, exist_ok=True)
    subprocess.run([sys.executable, osp.join(ROOT, 'tools', 'test.py'), osp.join(ROOT, config),
                    checkpoint, '--work-dir', work_dir, '--out', out_json], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out_json) as f:
        return float(json.load(f)['accuracy/top1'])


if __name__ == '__main__':
    main()
