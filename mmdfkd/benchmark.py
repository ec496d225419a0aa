"""Benchmark suites and result parsing used by ``tools/benchmark.py``."""
import glob
import json
import os.path as osp
import re
import statistics
from dataclasses import dataclass, field

import torch

from mmdfkd.utils.atomic_save import save_whole


@dataclass(frozen=True)
class Row:
    """One benchmark row: a method name, its teacher access level and its config."""
    method: str
    access: str  # 'white-box' | 'soft-label' | 'hard-label' | 'real-data'
    config: str
    cfg_options: tuple[str, ...] = ()
    # Reach the teacher through tools/serve_teacher.py on a local port (remote-HTTP rows).
    serve: bool = False


@dataclass(frozen=True)
class Suite:
    """A benchmark suite: the teacher config its rows distil and the rows themselves."""
    teacher_config: str
    rows: tuple[Row, ...] = field(default_factory=tuple)


CPSC_FMNIST = 'configs/cpsc_dfkd/cpsc_dfkd_lenet5bn_lenet5half_fmnist.py'
DIPKD_FMNIST = 'configs/dipkd/dipkd_lenet5_lenet5_fmnist.py'
# The student folded from the teacher's channels, at the 5x lower learning rate that keeps it
# (configs/deepinversion/deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py).
FOLDED = ('model.student_init_from_teacher=fold', 'optim_wrapper.student.optimizer.lr=0.01')
# The synthesis recipe of the best black-box row (label mixes + textured priors, as in
# configs/dipkd/dipkd_labelmix_texture_lenet5_lenet5_fmnist.py) applied to the 25K / 100K
# configs: the accuracy-vs-queries curve of that recipe. tests/test_benchmark.py checks that
# these options on the 50K config give exactly the texture config's synthesizer.
LABELMIX_TEXTURE = ('model.synthesizer.label_mix=0.7', 'model.synthesizer.label_mix_balanced=True',
                    'model.synthesizer.label_mix_mode=overlay',
                    'model.synthesizer.texture_prob=1.0',
                    'model.synthesizer.texture_freq=(6.0,14.0)')

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
            Row('deepinversion-priors', 'white-box',
                'configs/deepinversion/deepinversion_priors_lenet5bn_lenet5half_fmnist.py'),
            Row('deepinversion-priors-sliced', 'white-box',
                'configs/deepinversion/'
                'deepinversion_priors_sliced_lenet5bn_lenet5half_fmnist.py'),
            Row('deepinversion-priors-sliced-mixup', 'white-box',
                'configs/deepinversion/'
                'deepinversion_priors_sliced_mixup_lenet5bn_lenet5half_fmnist.py'),
            Row('deepinversion-priors-folded', 'white-box',
                'configs/deepinversion/'
                'deepinversion_priors_folded_lenet5bn_lenet5half_fmnist.py'),
            Row('deepinversion-priors-folded-intensity', 'white-box',
                'configs/deepinversion/'
                'deepinversion_priors_folded_intensity_lenet5bn_lenet5half_fmnist.py'),
            Row('deepinversion-priors-folded-intensity-long', 'white-box',
                'configs/deepinversion/'
                'deepinversion_priors_folded_intensity_long_lenet5bn_lenet5half_fmnist.py'),
            Row('cmi', 'white-box', 'configs/cmi/cmi_lenet5bn_lenet5half_fmnist.py'),
            Row('fast_dfkd', 'white-box',
                'configs/fast_dfkd/fast_dfkd_lenet5bn_lenet5half_fmnist.py'),
            Row('fast_dfkd-short', 'white-box',
                'configs/fast_dfkd/fast_dfkd_short_lenet5bn_lenet5half_fmnist.py'),
            Row('fast_dfkd-sliced', 'white-box',
                'configs/fast_dfkd/fast_dfkd_lenet5bn_lenet5half_fmnist.py',
                ('model.student_init_from_teacher=magnitude', )),
            Row('fast_dfkd-folded', 'white-box',
                'configs/fast_dfkd/fast_dfkd_lenet5bn_lenet5half_fmnist.py', FOLDED),
            Row('fast_dfkd-short-folded', 'white-box',
                'configs/fast_dfkd/fast_dfkd_short_lenet5bn_lenet5half_fmnist.py', FOLDED),
            Row('fast_dfkd-priors-folded', 'white-box',
                'configs/fast_dfkd/fast_dfkd_priors_folded_lenet5bn_lenet5half_fmnist.py'),
            Row('cpsc_dfkd', 'white-box', CPSC_FMNIST),
            Row('cpsc_dfkd-no_contrast', 'white-box', CPSC_FMNIST,
                ('model.synthesizer.contrastive=None', )),
            Row('cpsc_dfkd-no_cond', 'white-box', CPSC_FMNIST,
                ('model.synthesizer.generator.num_classes=None',
                 'model.synthesizer.class_ce_weight=0', 'model.pseudo_label_loss=None')),
            # The paper's recipe without the student's CE on the generator's sampled labels,
            # which the teacher contradicts early in training (docs/benchmarks.md, CPSC-DFKD).
            Row('cpsc_dfkd-no_pseudo_ce', 'white-box', CPSC_FMNIST,
                ('model.pseudo_label_loss=None', )),
            Row('cpsc_dfkd-replay', 'white-box',
                'configs/cpsc_dfkd/cpsc_dfkd_replay_lenet5bn_lenet5half_fmnist.py'),
            Row('cpsc_dfkd-replay-sliced', 'white-box',
                'configs/cpsc_dfkd/cpsc_dfkd_replay_lenet5bn_lenet5half_fmnist.py',
                ('model.student_init_from_teacher=magnitude', )),
            Row('cpsc_dfkd-replay-folded', 'white-box',
                'configs/cpsc_dfkd/cpsc_dfkd_replay_lenet5bn_lenet5half_fmnist.py', FOLDED),
            Row('cpsc_dfkd-priors-folded', 'white-box',
                'configs/cpsc_dfkd/cpsc_dfkd_priors_folded_lenet5bn_lenet5half_fmnist.py'),
            Row('cpsc_dfkd-priors-folded-no_pseudo_ce', 'white-box',
                'configs/cpsc_dfkd/'
                'cpsc_dfkd_priors_folded_no_pseudo_ce_lenet5bn_lenet5half_fmnist.py'),
            # The same with the generator's class CE at 0.2 instead of the paper's 0.7 (samples
            # the teacher reads as their label less often): +1.3 points on one seed with one
            # teacher, -1.5 over three seeds with another (docs/benchmarks.md, CPSC-DFKD).
            Row('cpsc_dfkd-priors-folded-no_pseudo_ce-cce0.2', 'white-box',
                'configs/cpsc_dfkd/'
                'cpsc_dfkd_priors_folded_no_pseudo_ce_lenet5bn_lenet5half_fmnist.py',
                ('model.synthesizer.class_ce_weight=0.2', )),
            # The same with 10 student steps per generator step instead of 5: each fresh
            # generator batch is learnt from twice as often, half of every student batch
            # still fresh (docs/benchmarks.md, CPSC-DFKD).
            Row('cpsc_dfkd-priors-folded-no_pseudo_ce-steps10', 'white-box',
                'configs/cpsc_dfkd/cpsc_dfkd_priors_folded_steps10_lenet5bn_lenet5half_fmnist.py'),
            # The steps10 row with a generator that sees the prior it edits
            # (ConditionalImageEditor instead of the DCGAN inside PriorResidualGenerator).
            Row('cpsc_dfkd-priors-editor-folded-steps10', 'white-box',
                'configs/cpsc_dfkd/'
                'cpsc_dfkd_priors_editor_folded_steps10_lenet5bn_lenet5half_fmnist.py'),
            # The editor row with a per-image intensity factor on the student's batches, as in
            # deepinversion-priors-folded-intensity.
            Row('cpsc_dfkd-priors-editor-folded-steps10-intensity', 'white-box',
                'configs/cpsc_dfkd/'
                'cpsc_dfkd_priors_editor_folded_steps10_intensity_lenet5bn_lenet5half_fmnist.py'),
            # The priors row with DeepInversion's student diet: 20 steps per iteration, all
            # on pooled generator batches (fewer iterations to stay inside the budget).
            Row('cpsc_dfkd-priors-folded-pooled20', 'white-box',
                'configs/cpsc_dfkd/cpsc_dfkd_priors_folded_lenet5bn_lenet5half_fmnist.py',
                ('model.student_steps=20', 'model.synthesizer.replay_ratio=1.0',
                 'train_cfg.max_iters=480', 'param_scheduler.student.T_max=480',
                 'param_scheduler.synthesizer.T_max=480', 'train_cfg.val_interval=96',
                 'default_hooks.checkpoint.interval=96')),
            Row('cpsc_dfkd-priors-refined-folded', 'white-box',
                'configs/cpsc_dfkd/'
                'cpsc_dfkd_priors_refined_folded_lenet5bn_lenet5half_fmnist.py'),
        )),
    # Black-box: the LeNet-5 teacher is reached only through HardLabelTeacher (top-1 labels).
    'fmnist-blackbox': Suite(
        teacher_config='configs/teachers/lenet5_fmnist.py',
        rows=(
            Row('naive-kd-noise', 'hard-label',
                'configs/dipkd/naive_kd_noise_lenet5_lenet5_fmnist.py'),
            Row('dipkd-10k', 'hard-label', 'configs/dipkd/dipkd_10k_lenet5_lenet5_fmnist.py'),
            Row('dipkd-25k', 'hard-label', 'configs/dipkd/dipkd_25k_lenet5_lenet5_fmnist.py'),
            Row('dipkd-50k', 'hard-label', DIPKD_FMNIST),
            Row('dipkd-50k-long', 'hard-label',
                'configs/dipkd/dipkd_50k_long_lenet5_lenet5_fmnist.py'),
            Row('dipkd-50k-labelmix', 'hard-label',
                'configs/dipkd/dipkd_labelmix_lenet5_lenet5_fmnist.py'),
            Row('dipkd-100k', 'hard-label',
                'configs/dipkd/dipkd_100k_lenet5_lenet5_fmnist.py'),
            Row('dipkd-50k-remote', 'hard-label (HTTP)', DIPKD_FMNIST, serve=True),
            Row('dipkd-50k-labelmix-remote', 'hard-label (HTTP)',
                'configs/dipkd/dipkd_labelmix_lenet5_lenet5_fmnist.py', serve=True),
            Row('dipkd-50k-texture', 'hard-label',
                'configs/dipkd/dipkd_labelmix_texture_lenet5_lenet5_fmnist.py'),
            # The texture row again, with the teacher behind tools/serve_teacher.py.
            Row('dipkd-50k-texture-remote', 'hard-label (HTTP)',
                'configs/dipkd/dipkd_labelmix_texture_lenet5_lenet5_fmnist.py', serve=True),
            Row('dipkd-25k-texture', 'hard-label',
                'configs/dipkd/dipkd_25k_lenet5_lenet5_fmnist.py', LABELMIX_TEXTURE),
            Row('dipkd-100k-texture', 'hard-label',
                'configs/dipkd/dipkd_100k_lenet5_lenet5_fmnist.py', LABELMIX_TEXTURE),
            # The texture recipe on the 50-epoch schedule: same 50K queries, longer training.
            Row('dipkd-50k-texture-long', 'hard-label',
                'configs/dipkd/dipkd_50k_long_lenet5_lenet5_fmnist.py', LABELMIX_TEXTURE),
            # The texture recipe with a width-4 primer that also teaches on free overlays.
            Row('dipkd-50k-wide-primer', 'hard-label',
                'configs/dipkd/dipkd_wide_primer_lenet5_lenet5_fmnist.py'),
            # The best row, with the teacher behind tools/serve_teacher.py.
            Row('dipkd-50k-wide-primer-remote', 'hard-label (HTTP)',
                'configs/dipkd/dipkd_wide_primer_lenet5_lenet5_fmnist.py', serve=True),
        )),
    # DiffDFKD on CPU: a small DDPM trained on sklearn digits (tools/train_ddpm.py) steered by
    # the LeNet-5-BN teacher of the fmnist suite.
    'fmnist-diffusion': Suite(
        teacher_config='configs/teachers/lenet5bn_fmnist.py',
        rows=(Row('diffdfkd', 'white-box',
                  'configs/diffdfkd/diffdfkd_lenet5bn_lenet5half_fmnist.py'), )),
}


def _latest_scalars(work_dir: str) -> list[dict]:
    files = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not files:
        return []
    with open(files[-1]) as f:
        return [json.loads(line) for line in f if line.strip()]


def timed_validation_options(mark_s: float, stop_after: bool = False) -> list[str]:
    """``--cfg-options`` adding a ``TimedValidationHook`` at ``mark_s`` to any config."""
    return ['default_hooks.timed_val.type=TimedValidationHook',
            f'default_hooks.timed_val.marks_s=[{mark_s:g}]',
            f'default_hooks.timed_val.stop_after_last={stop_after}']


def read_run_result(work_dir: str, mark_s: float | None = None) -> dict:
    """Final accuracy, checkpoint and teacher query count of a finished run.

    The accuracy is the last ``accuracy/top1`` the run logged (its final validation); the
    query count comes from the ``teacher_queries`` buffer of the last checkpoint. With
    ``mark_s``, ``accuracy_at_mark`` is the ``TimedValidationHook`` accuracy at that mark.
    """
    result: dict = {}
    last = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(last):
        with open(last) as f:
            result['checkpoint'] = f.read().strip()
    scalars = _latest_scalars(work_dir)
    accs = [r['accuracy/top1'] for r in scalars if 'accuracy/top1' in r]
    if accs:
        result['accuracy'] = float(accs[-1])
    if mark_s is not None:
        key = f'accuracy/top1@{mark_s:g}s'
        at_mark = [r[key] for r in scalars if key in r]
        if at_mark:
            result['accuracy_at_mark'] = float(at_mark[-1])
    if 'checkpoint' in result:
        state = torch.load(result['checkpoint'], map_location='cpu', weights_only=False)
        weights = state.get('state_dict', {})
        # DataFreeDistiller counts in `teacher_queries`, teacher wrappers in `teacher.queries`.
        queries = weights.get('teacher_queries', weights.get('teacher.queries'))
        if queries is not None:
            result['teacher_queries'] = int(queries)
        pool = weights.get('synthesizer.pool._extra_state')
        if isinstance(pool, dict) and pool.get('batches'):
            result['pool_images'] = int(sum(n for _, n in pool['batches']))
    return result


def combine_seed_runs(runs: list[dict]) -> dict:
    """One suite row from the same row run with several seeds (``tools/benchmark.py --seeds``).

    ``runs`` are the per-seed rows (each with its ``seed``). The accuracies, the wall time and
    the synthesis throughput (where a row has it) become their means, the teacher queries the
    mean rounded to an image, the peak RSS the largest; ``seeds`` and ``student_acc_seeds``
    keep what every seed gave, and ``student_acc_std`` is the sample standard deviation (0
    for a single seed), so a table shows how far the row moves with the seed (pool, priors,
    batch order) alone.
    """
    if not runs:
        raise ValueError('combine_seed_runs needs at least one run')

    def mean(key: str):
        values = [r[key] for r in runs if r.get(key) is not None]
        return sum(values) / len(values) if values else None

    accs = [float(r['student_acc']) for r in runs]
    centre = statistics.fmean(accs)
    spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
    row = dict(runs[0])
    row.update(student_acc=round(centre, 4), student_acc_std=round(spread, 4),
               seeds=[r['seed'] for r in runs],
               student_acc_seeds=[round(a, 2) for a in accs],
               student_acc_at_mark=mean('student_acc_at_mark'),
               wall_s=round(mean('wall_s'), 1),
               peak_rss_mb=max(r['peak_rss_mb'] for r in runs),
               command=[r['command'] for r in runs])
    queries = mean('teacher_queries')
    row['teacher_queries'] = None if queries is None else round(queries)
    if row.get('images_per_s') is not None:
        row['images_per_s'] = round(mean('images_per_s'), 3)
    row.pop('seed', None)
    return row


def merge_results(path: str, suite: Suite, previous: list[dict], rows: list[dict],
                  fields_only: bool = False) -> None:
    """Write ``rows`` over the rows of the same methods in ``previous``, in suite order.

    With ``fields_only`` the new rows update the given fields of existing rows (e.g. only the
    accuracy at the time mark) and keep the others.
    """
    new = {r['method']: r for r in rows}
    if fields_only:
        merged = [dict(r, **new.pop(r['method'], {})) for r in previous] + list(new.values())
    else:
        merged = [r for r in previous if r['method'] not in new] + rows
    order = {r.method: i for i, r in enumerate(suite.rows)}
    merged.sort(key=lambda r: order.get(r['method'], len(order)))
    # Whole or not at all: the file holds every row measured so far (hours of runs).
    save_whole(json.dumps(merged, indent=2).encode(), path, 'benchmark results',
               'Free space and run the suite again; the rows measured before are intact.',
               save=lambda data, file: file.write(data))


def format_markdown(suite: str, rows: list[dict], commands: str | list[str]) -> str:
    """The suite's results as the markdown section ``docs/benchmarks.md`` holds: a heading,
    the commands that produced it and one table row per benchmark row.
    """
    commands = [commands] if isinstance(commands, str) else commands
    lines = [f'### Suite `{suite}`', '']
    lines += [f'Command: `{c}`' + ('  ' if i < len(commands) - 1 else '')
              for i, c in enumerate(commands)]
    marks = sorted({r['acc_at_s'] for r in rows if r.get('acc_at_s')})
    mark_title = (f'acc @ {marks[0]:g} s (%)' if len(marks) == 1 else 'acc @ mark (%)')

    def fmt(value: float | None, spec: str) -> str:
        return '-' if value is None else format(value, spec)

    # Pool-based rows of the diffusion suite also report synthesis throughput.
    with_rate = any(r.get('images_per_s') is not None for r in rows)
    rate_head, rate_rule = (' synthetic img/s |', '---|') if with_rate else ('', '')
    # Rows run with --seeds show the mean as the student accuracy and every seed's result.
    with_seeds = any(r.get('student_acc_seeds') for r in rows)
    seed_head, seed_rule = (f' {SEEDS_TITLE} |', '---|') if with_seeds else ('', '')
    lines += ['',
             f'| method | access | teacher acc (%) | student acc (%) | {mark_title} | wall (s) '
             f'| teacher queries | peak RSS (MB) |{rate_head}{seed_head}',
             f'|---|---|---|---|---|---|---|---|{rate_rule}{seed_rule}']
    for r in rows:
        rate = f" {fmt(r.get('images_per_s'), '.2f')} |" if with_rate else ''
        per_seed = f' {format_seed_cell(r)} |' if with_seeds else ''
        lines.append(f"| {r['method']} | {r['access']} | {fmt(r.get('teacher_acc'), '.2f')} | "
                     f"{fmt(r.get('student_acc'), '.2f')} | "
                     f"{fmt(r.get('student_acc_at_mark'), '.2f')} | "
                     f"{fmt(r.get('wall_s'), '.0f')} | {r.get('teacher_queries', '-')} | "
                     f"{fmt(r.get('peak_rss_mb'), '.0f')} |{rate}{per_seed}")
    return '\n'.join(lines) + '\n'


SEEDS_TITLE = 'student acc per seed (%)'


def format_seed_cell(row: dict) -> str:
    """``'86.66 (0), 86.91 (1); sd 0.18'`` for a row run with ``--seeds``, ``'-'`` otherwise."""
    accs, seeds = row.get('student_acc_seeds'), row.get('seeds')
    if not accs:
        return '-'
    cell = ', '.join(f'{a:.2f} ({s})' for a, s in zip(accs, seeds))
    return cell + f"; sd {row.get('student_acc_std', 0.0):.2f}"


def parse_seed_cell(text: str) -> dict:
    """Inverse of :func:`format_seed_cell` (``{}`` for ``'-'``)."""
    pairs = re.findall(r'([\d.]+) \((\d+)\)', text)
    if not pairs:
        return {}
    std = re.search(r'sd ([\d.]+)', text)
    return dict(student_acc_seeds=[float(a) for a, _ in pairs],
                seeds=[int(s) for _, s in pairs],
                student_acc_std=float(std.group(1)) if std else 0.0)


def _parse_cell(text: str):
    text = text.strip()
    if text in ('', '-'):
        return None
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def read_docs_section(path: str, suite: str) -> tuple[list[dict], list[str]]:
    """Rows and commands of a suite's table written by :func:`format_markdown` into ``path``
    (``([], [])`` when there is none), so that re-running some rows of a suite from a fresh
    checkout (no ``OUT/results.json``) keeps the other rows of the documented table."""
    begin, end = f'<!-- suite:{suite}:begin -->', f'<!-- suite:{suite}:end -->'
    text = open(path).read() if osp.isfile(path) else ''
    if begin not in text or end not in text:
        return [], []
    section = text.split(begin, 1)[1].split(end, 1)[0]
    commands = re.findall(r'^Command: `(.*)`', section, flags=re.M)
    lines = [ln for ln in section.splitlines() if ln.startswith('|')]
    if len(lines) < 2:
        return [], commands
    keys = {'method': 'method', 'access': 'access', 'teacher acc (%)': 'teacher_acc',
            'student acc (%)': 'student_acc', 'wall (s)': 'wall_s',
            'teacher queries': 'teacher_queries', 'peak RSS (MB)': 'peak_rss_mb',
            'synthetic img/s': 'images_per_s'}
    header = [h.strip() for h in lines[0].strip('|').split('|')]
    rows = []
    for line in lines[2:]:
        cells = [_parse_cell(c) for c in line.strip('|').split('|')]
        row: dict = {}
        for name, value, text in zip(header, cells, line.strip('|').split('|')):
            if name == SEEDS_TITLE:
                row.update(parse_seed_cell(text))
                continue
            mark = re.fullmatch(r'acc @ ([\d.]+) s \(%\)', name)
            if mark:
                row['student_acc_at_mark'], row['acc_at_s'] = value, float(mark.group(1))
            elif name in keys and value is not None:
                row[keys[name]] = str(value) if name in ('method', 'access') else value
        rows.append(row)
    return rows, commands


def _replace_block(text: str, begin: str, end: str, body: str) -> str:
    """``text`` with what lies between the markers ``begin`` and ``end`` set to ``body``
    (the block appended at the end when the markers are missing)."""
    block = f'{begin}\n{body}{end}'
    if begin in text and end in text:
        return re.sub(re.escape(begin) + '.*?' + re.escape(end), lambda _: block, text,
                      flags=re.S)
    return text.rstrip('\n') + '\n\n' + block + '\n'


def _save_text(text: str, path: str, what: str) -> None:
    save_whole(text.encode(), path, what,
               'Free space and run the suite again with --docs; the file is as before.',
               save=lambda data, file: file.write(data))


def update_docs(path: str, suite: str, table: str) -> None:
    """Replace (or append) the suite's section between markers in a markdown file."""
    text = open(path).read() if osp.isfile(path) else '# Benchmarks\n'
    text = _replace_block(text, f'<!-- suite:{suite}:begin -->', f'<!-- suite:{suite}:end -->',
                          table)
    _save_text(text, path, 'benchmark docs')


# Option sets several rows share, by what they stand for (config READMEs show the name).
OPTION_SETS = {
    FOLDED: 'student folded from the teacher, student lr 0.01 (`FOLDED` in mmdfkd/benchmark.py)',
    LABELMIX_TEXTURE: "synthesizer of `dipkd_labelmix_texture_lenet5_lenet5_fmnist.py` "
                      '(`LABELMIX_TEXTURE` in mmdfkd/benchmark.py)',
}
# A config folder's README shows the benchmark rows of its configs between these markers.
RESULTS_BEGIN, RESULTS_END = '<!-- results:begin -->', '<!-- results:end -->'


def format_folder_results(folder: str, docs_path: str) -> str:
    """The benchmark rows whose config lies in ``folder`` (``'configs/dipkd'``), with the
    results ``docs_path`` documents for them, as one markdown table: what the folder's
    README holds between :data:`RESULTS_BEGIN` and :data:`RESULTS_END`. A row the docs do
    not hold yet shows ``-``."""
    folder = folder.rstrip('/')
    lines = ['Rows of the benchmark suites in [docs/benchmarks.md](../../docs/benchmarks.md) '
             "(each with the command that ran it) whose config lies in this folder: the student's",
             'accuracy on the real test split, the only real images a data-free run reads, on a',
             '2-core CPU. `python tools/benchmark.py --docs docs/benchmarks.md` rewrites this',
             'table; a config without a row has not been measured (the CIFAR configs carry the',
             'published recipes for GPU users).', '',
             '| suite | row | config | changed from the config | teacher acc (%) | '
             'student acc (%) | acc @ mark (%) | wall (s) | teacher queries |',
             '|---|---|---|---|---|---|---|---|---|']
    for suite_name, suite in SUITES.items():
        documented = {r.get('method'): r for r in read_docs_section(docs_path, suite_name)[0]}
        for row in suite.rows:
            if osp.dirname(row.config) != folder:
                continue
            result = documented.get(row.method, {})
            named = OPTION_SETS.get(tuple(row.cfg_options))
            changes = [named] if named else [f'`{option}`' for option in row.cfg_options]
            if row.serve:
                changes.append('teacher served over HTTP (`tools/serve_teacher.py`)')
            student = result.get('student_acc')
            student_cell = '-' if student is None else f'{student:.2f}'
            if student is not None and result.get('student_acc_seeds'):
                student_cell += f" (mean of {len(result['student_acc_seeds'])} seeds)"
            at_mark = result.get('student_acc_at_mark')
            mark_cell = ('-' if at_mark is None or result.get('acc_at_s') is None
                         else f"{at_mark:.2f} @ {result['acc_at_s']:g} s")
            teacher, wall = result.get('teacher_acc'), result.get('wall_s')
            lines.append(
                f"| {suite_name} | {row.method} | `{osp.basename(row.config)}` | "
                f"{', '.join(changes) or '-'} | "
                f"{'-' if teacher is None else f'{teacher:.2f}'} | {student_cell} | "
                f"{mark_cell} | {'-' if wall is None else f'{wall:.0f}'} | "
                f"{result.get('teacher_queries', '-')} |")
    return '\n'.join(lines) + '\n'


def config_folders() -> list[str]:
    """The config folders (``'configs/<method>'``) that hold a benchmark row's config."""
    return sorted({osp.dirname(row.config) for suite in SUITES.values() for row in suite.rows})


def update_config_readmes(docs_path: str, root: str) -> list[str]:
    """Rewrite the results table of every ``<root>/configs/<method>/README.md`` that has
    the results markers from ``docs_path``; returns the READMEs written."""
    written = []
    for folder in config_folders():
        readme = osp.join(root, folder, 'README.md')
        if not osp.isfile(readme):
            continue
        text = open(readme).read()
        if RESULTS_BEGIN not in text or RESULTS_END not in text:
            continue
        new = _replace_block(text, RESULTS_BEGIN, RESULTS_END,
                             format_folder_results(folder, docs_path))
        if new != text:
            _save_text(new, readme, 'config README')
            written.append(readme)
    return written
