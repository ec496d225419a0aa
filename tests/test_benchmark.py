import json
import os.path as osp
import subprocess
import sys

from mmdfkd.benchmark import SUITES, format_markdown, merge_results, update_docs

from .conftest import ROOT, needs_fmnist


def test_fmnist_suite_rows():
    rows = {r.method: r for r in SUITES['fmnist'].rows}
    assert {'real-data', 'dafl', 'dfad', 'zskt', 'deepinversion', 'cmi', 'fast_dfkd'} <= set(rows)
    assert rows['real-data'].access == 'real-data'
    assert all(r.access in ('white-box', 'soft-label', 'hard-label', 'real-data')
               for r in rows.values())
    for r in rows.values():
        assert osp.isfile(osp.join(ROOT, r.config)), r.config


def test_markdown_and_docs_section(tmp_path):
    rows = [dict(method='dfad', access='white-box', teacher_acc=91.0, student_acc=80.5,
                 wall_s=12.3, teacher_queries=100, peak_rss_mb=512.0, command='c')]
    table = format_markdown('fmnist', rows, 'python tools/benchmark.py --suite fmnist')
    assert '| dfad | white-box | 91.00 | 80.50 | - | 12 | 100 | 512 |' in table
    timed = format_markdown('fmnist', [dict(rows[0], student_acc_at_mark=70.25, acc_at_s=180.0)],
                            'c')
    assert '| acc @ 180 s (%) |' in timed and '| 80.50 | 70.25 | 12 |' in timed
    doc = tmp_path / 'bench.md'
    doc.write_text('# Benchmarks\n\nintro\n')
    update_docs(str(doc), 'fmnist', table)
    update_docs(str(doc), 'fmnist', table.replace('80.50', '81.00'))
    text = doc.read_text()
    assert text.count('<!-- suite:fmnist:begin -->') == 1 and '81.00' in text
    assert '80.50' not in text and 'intro' in text


def run_dfad_row(teacher_ckpt: str, out, *extra: str) -> list[dict]:
    """Run the fmnist suite's dfad row through tools/benchmark.py; return results.json."""
    cmd = [sys.executable, osp.join(ROOT, 'tools', 'benchmark.py'), '--suite', 'fmnist',
           '--out', str(out), '--methods', 'dfad', '--teacher-ckpt', teacher_ckpt, *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.load(open(out / 'results.json'))


@needs_fmnist
def test_benchmark_cli_writes_results(teacher_ckpt, tmp_path):
    rows = run_dfad_row(teacher_ckpt, tmp_path, '--max-iters', '2', '--acc-at-s', '0.01')
    assert len(rows) == 1
    row = rows[0]
    assert set(row) == {'method', 'access', 'teacher_acc', 'student_acc', 'wall_s',
                        'teacher_queries', 'peak_rss_mb', 'command', 'student_acc_at_mark',
                        'acc_at_s', 'command_at_mark'}
    # TimedValidationHook validated after the first iteration (past the 0.01 s mark)
    assert 0 <= row['student_acc_at_mark'] <= 100 and row['acc_at_s'] == 0.01
    assert row['method'] == 'dfad' and row['access'] == 'white-box'
    assert 0 <= row['student_acc'] <= 100 and 0 <= row['teacher_acc'] <= 100
    # 2 iterations x (1 generator batch of 256 + 5 student batches of 256)
    assert row['teacher_queries'] == 2 * (256 + 5 * 256)
    assert row['peak_rss_mb'] > 50 and row['wall_s'] > 0
    assert (tmp_path / 'results.md').read_text().count('| dfad |') == 1


@needs_fmnist
def test_benchmark_cli_runs_every_seed(teacher_ckpt, tmp_path):
    (row,) = run_dfad_row(teacher_ckpt, tmp_path, '--max-iters', '1', '--seeds', '3,4')
    assert row['seeds'] == [3, 4] and len(row['student_acc_seeds']) == 2
    assert abs(row['student_acc'] - sum(row['student_acc_seeds']) / 2) < 0.01
    for seed in (3, 4):  # each seed trained in its own work dir with its own randomness seed
        dumped = (tmp_path / 'dfad' / f'seed_{seed}' / 'dfad_lenet5bn_lenet5half_fmnist.py')
        assert f'seed={seed})' in dumped.read_text()
    assert 'student acc per seed (%)' in (tmp_path / 'results.md').read_text()


def test_partial_runs_merge_into_suite_order(tmp_path):
    path = str(tmp_path / 'results.json')
    suite = SUITES['fmnist']
    first = [dict(method=m, student_acc=1.0) for m in ('real-data', 'dfad', 'zskt')]
    merge_results(path, suite, [], first)
    merge_results(path, suite, json.load(open(path)),
                  [dict(method='dafl', student_acc=2.0), dict(method='dfad', student_acc=3.0)])
    rows = json.load(open(path))
    assert [r['method'] for r in rows] == ['real-data', 'dafl', 'dfad', 'zskt']
    assert rows[2]['student_acc'] == 3.0  # the newer dfad row replaced the old one


def test_fields_only_merge_keeps_the_other_columns(tmp_path):
    path = str(tmp_path / 'results.json')
    suite = SUITES['fmnist']
    merge_results(path, suite, [], [dict(method='dfad', student_acc=70.0, wall_s=800.0)])
    merge_results(path, suite, json.load(open(path)),
                  [dict(method='dfad', student_acc_at_mark=55.0, acc_at_s=180.0),
                   dict(method='dafl', student_acc_at_mark=40.0, acc_at_s=180.0)],
                  fields_only=True)
    rows = {r['method']: r for r in json.load(open(path))}
    assert rows['dfad'] == dict(method='dfad', student_acc=70.0, wall_s=800.0,
                                student_acc_at_mark=55.0, acc_at_s=180.0)
    assert rows['dafl']['student_acc_at_mark'] == 40.0


def test_labelmix_texture_options_reproduce_the_texture_config():
    """The 25K / 100K texture rows apply LABELMIX_TEXTURE to the plain configs; on the 50K
    config the options must give exactly the texture config's synthesizer (no drift)."""
    import argparse

    from mmengine.config import Config, DictAction

    from mmdfkd.benchmark import LABELMIX_TEXTURE
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    options = parser.parse_args(['--cfg-options', *LABELMIX_TEXTURE]).cfg_options
    cfg = Config.fromfile(osp.join(ROOT, 'configs/dipkd/dipkd_lenet5_lenet5_fmnist.py'))
    cfg.merge_from_dict(options)
    texture = Config.fromfile(
        osp.join(ROOT, 'configs/dipkd/dipkd_labelmix_texture_lenet5_lenet5_fmnist.py'))
    assert cfg.model.synthesizer.to_dict() == texture.model.synthesizer.to_dict()
    bb = {r.method: r for r in SUITES['fmnist-blackbox'].rows}
    for method, images in (('dipkd-25k-texture', 25000), ('dipkd-100k-texture', 100000)):
        row = Config.fromfile(osp.join(ROOT, bb[method].config))
        row.merge_from_dict(options)
        assert row.model.synthesizer.num_images == images == row.model.teacher.query_budget
        assert row.model.synthesizer.texture_prob == 1.0
        assert row.model.synthesizer.label_mix_mode == 'overlay'
    # The long row is the 50K texture recipe exactly, on the 50-epoch schedule.
    long = Config.fromfile(osp.join(ROOT, bb['dipkd-50k-texture-long'].config))
    long.merge_from_dict(options)
    assert long.model.synthesizer.to_dict() == texture.model.synthesizer.to_dict()
    assert long.model.phase_iters['primer'] == long.model.phase_iters['distill'] == 50 * 500
    assert texture.model.phase_iters['distill'] == 20 * 500



def test_cpsc_ablation_rows_switch_off_only_what_they_name():
    """Issue 5's ablations are the paper's config with one component removed; an option
    with a typo in its key would silently ablate nothing (merge_from_dict adds new keys)."""
    import argparse

    from mmengine.config import Config, DictAction
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    rows = {r.method: r for r in SUITES['fmnist'].rows}
    paper = Config.fromfile(osp.join(ROOT, rows['cpsc_dfkd'].config)).model.to_dict()
    assert paper['pseudo_label_loss'] is not None and paper['synthesizer']['contrastive']

    def ablated(method: str) -> dict:
        cfg = Config.fromfile(osp.join(ROOT, rows[method].config))
        cfg.merge_from_dict(parser.parse_args(
            ['--cfg-options', *rows[method].cfg_options]).cfg_options)
        model = cfg.model.to_dict()
        assert model.keys() == paper.keys()
        assert model['synthesizer'].keys() == paper['synthesizer'].keys()
        return model

    no_ce = ablated('cpsc_dfkd-no_pseudo_ce')
    assert no_ce['pseudo_label_loss'] is None
    assert {**no_ce, 'pseudo_label_loss': paper['pseudo_label_loss']} == paper
    no_contrast = ablated('cpsc_dfkd-no_contrast')
    assert no_contrast['synthesizer']['contrastive'] is None
    assert {k: v for k, v in no_contrast['synthesizer'].items() if k != 'contrastive'} == \
        {k: v for k, v in paper['synthesizer'].items() if k != 'contrastive'}
    no_cond = ablated('cpsc_dfkd-no_cond')
    assert no_cond['synthesizer']['generator']['num_classes'] is None
    assert no_cond['synthesizer']['class_ce_weight'] == 0
    assert no_cond['pseudo_label_loss'] is None

def _fmnist_row_config(method: str) -> dict:
    """The config a row of the fmnist suite runs, as a dict; the row must pass no options,
    so the config file alone is the recipe."""
    from mmengine.config import Config
    row = {r.method: r for r in SUITES['fmnist'].rows}[method]
    assert not row.cfg_options, method
    return Config.fromfile(osp.join(ROOT, row.config)).to_dict()


def test_cpsc_steps10_row_changes_only_the_student_steps():
    """The steps10 row is the best CPSC row with 10 student steps instead of 5 and nothing
    else: a wrong ``_base_`` would compare it against a different recipe."""
    base = _fmnist_row_config('cpsc_dfkd-priors-folded-no_pseudo_ce')
    steps10 = _fmnist_row_config('cpsc_dfkd-priors-folded-no_pseudo_ce-steps10')
    assert (base['model']['student_steps'], steps10['model']['student_steps']) == (5, 10)
    steps10['model']['student_steps'] = 5
    assert steps10 == base


def test_cpsc_editor_row_changes_only_the_inner_generator():
    """The editor row is the steps10 row with a ConditionalImageEditor inside the
    PriorResidualGenerator and nothing else (same terms, weights, schedule, priors)."""
    steps10 = _fmnist_row_config('cpsc_dfkd-priors-folded-no_pseudo_ce-steps10')
    editor = _fmnist_row_config('cpsc_dfkd-priors-editor-folded-steps10')
    inner = editor['model']['synthesizer']['generator']['generator']
    assert inner['type'] == 'ConditionalImageEditor' and inner['num_classes'] == 10
    inner.update(type='DCGANGenerator')
    assert editor == steps10


def test_blackbox_and_diffusion_suites_point_at_real_configs():
    bb = {r.method: r for r in SUITES['fmnist-blackbox'].rows}
    assert {'naive-kd-noise', 'dipkd-50k', 'dipkd-100k', 'dipkd-50k-remote'} <= set(bb)
    assert bb['dipkd-50k-remote'].serve and not bb['dipkd-50k'].serve
    # the remote variant of the best row buys the same labels through the server
    for best in ('dipkd-50k-labelmix', 'dipkd-50k-texture'):
        assert bb[f'{best}-remote'].serve and not bb[best].serve
        assert bb[f'{best}-remote'].config == bb[best].config
    assert all(r.access.startswith('hard-label') for r in bb.values())
    assert SUITES['fmnist-blackbox'].teacher_config == 'configs/teachers/lenet5_fmnist.py'
    for suite in ('fmnist-blackbox', 'fmnist-diffusion'):
        for r in SUITES[suite].rows:
            assert osp.isfile(osp.join(ROOT, r.config)), r.config
    rows = [dict(method='diffdfkd', access='white-box', student_acc=60.0, images_per_s=4.5)]
    table = format_markdown('fmnist-diffusion', rows, 'cmd')
    assert 'synthetic img/s' in table and '4.50' in table


def test_query_count_of_wrapped_teachers_is_read_from_checkpoints(tmp_path):
    from mmdfkd.benchmark import read_run_result
    import torch
    ckpt = tmp_path / 'iter_1.pth'
    torch.save({'state_dict': {'teacher.queries': torch.tensor(50000),
                               'synthesizer.pool._extra_state': {
                                   'batches': [('a', 500), ('b', 500)]}}}, ckpt)
    (tmp_path / 'last_checkpoint').write_text(str(ckpt))
    result = read_run_result(str(tmp_path))
    assert result['teacher_queries'] == 50000 and result['pool_images'] == 1000


def test_documented_table_reads_back_into_rows(tmp_path):
    """A suite re-run from a fresh checkout (no results.json) starts from the rows already
    in the docs, so re-running one row keeps the others."""
    from mmdfkd.benchmark import format_markdown, read_docs_section, update_docs
    rows = [dict(method='dfad', access='white-box', teacher_acc=91.73, student_acc=70.94,
                 student_acc_at_mark=65.43, acc_at_s=180.0, wall_s=852, teacher_queries=1019904,
                 peak_rss_mb=1065),
            dict(method='cmi', access='white-box', teacher_acc=91.73, student_acc=73.12,
                 student_acc_at_mark=None, acc_at_s=180.0, wall_s=613, teacher_queries=1154048,
                 peak_rss_mb=1347)]
    docs = str(tmp_path / 'benchmarks.md')
    commands = ['python tools/benchmark.py --suite fmnist --out a', 'python tools/benchmark.py b']
    update_docs(docs, 'fmnist', format_markdown('fmnist', rows, commands))
    back, back_commands = read_docs_section(docs, 'fmnist')
    assert back == rows and back_commands == commands
    assert read_docs_section(docs, 'fmnist-blackbox') == ([], [])


def test_seed_runs_combine_into_one_row_that_reads_back(tmp_path):
    """--seeds: the row holds the mean, the sample sd and every seed's accuracy; the docs table
    shows them and a fresh checkout reads them back (so re-running another row keeps them)."""
    from mmdfkd.benchmark import combine_seed_runs, read_docs_section
    runs = [dict(method='dfad', access='white-box', teacher_acc=91.5, student_acc=acc,
                 student_acc_at_mark=mark, acc_at_s=180.0, wall_s=wall, teacher_queries=q,
                 peak_rss_mb=rss, command=f'train seed {seed}', seed=seed)
            for seed, acc, mark, wall, q, rss in ((0, 86.0, 80.0, 700.0, 1000, 900.0),
                                                  (1, 87.0, None, 800.0, 1001, 950.0),
                                                  (2, 88.0, 82.0, 900.0, 1003, 920.0))]
    row = combine_seed_runs(runs)
    assert row['student_acc'] == 87.0 and row['student_acc_std'] == 1.0  # sample sd of 86/87/88
    assert row['student_acc_seeds'] == [86.0, 87.0, 88.0] and row['seeds'] == [0, 1, 2]
    assert row['student_acc_at_mark'] == 81.0  # mean of the seeds that reached the mark
    assert row['wall_s'] == 800.0 and row['teacher_queries'] == 1001 and row['peak_rss_mb'] == 950
    assert 'seed' not in row and row['command'] == ['train seed 0', 'train seed 1', 'train seed 2']
    assert combine_seed_runs(runs[:1])['student_acc_std'] == 0.0

    single = dict(method='dafl', access='white-box', teacher_acc=91.5, student_acc=60.0,
                  student_acc_at_mark=None, acc_at_s=180.0, wall_s=750, teacher_queries=5,
                  peak_rss_mb=1000)
    table = format_markdown('fmnist', [single, row], 'c')
    assert '| student acc per seed (%) |' in table
    assert '| 86.00 (0), 87.00 (1), 88.00 (2); sd 1.00 |' in table
    assert table.splitlines()[-2].endswith('| 1000 | - |')  # the single-seed row: no seeds
    docs = str(tmp_path / 'benchmarks.md')
    update_docs(docs, 'fmnist', table)
    back, _ = read_docs_section(docs, 'fmnist')
    assert 'seeds' not in back[0]
    assert back[1]['student_acc_seeds'] == [86.0, 87.0, 88.0] and back[1]['seeds'] == [0, 1, 2]
    assert back[1]['student_acc'] == 87.0 and back[1]['student_acc_std'] == 1.0
    # a table without seeded rows keeps its old columns (documented tables stay as they are)
    assert 'per seed' not in format_markdown('fmnist', [single], 'c')


def test_seeds_option_rejects_bad_values():
    import argparse
    import importlib.util
    spec = importlib.util.spec_from_file_location('benchmark_tool',
                                                  osp.join(ROOT, 'tools', 'benchmark.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    parse_seeds = tool.parse_seeds
    assert parse_seeds('0,1,2') == [0, 1, 2] and parse_seeds('3') == [3]
    for bad in ('a,b', '0,0', '-1', ''):
        try:
            parse_seeds(bad)
        except argparse.ArgumentTypeError as err:
            assert '--seeds' in str(err)
        else:
            raise AssertionError(f'--seeds {bad!r} was accepted')
    # seconds and iteration overrides: positive only
    assert tool.positive_number('840') == 840.0 and tool.positive_int('5') == 5
    for parse, bad in ((tool.positive_number, '-5'), (tool.positive_number, '0'),
                       (tool.positive_number, 'nan'), (tool.positive_number, 'x'),
                       (tool.positive_int, '0'), (tool.positive_int, '2.5')):
        try:
            parse(bad)
        except argparse.ArgumentTypeError:
            pass
        else:
            raise AssertionError(f'{parse.__name__}({bad!r}) was accepted')


def test_bad_arguments_fail_before_any_work(tmp_path):
    """A mistyped row or a missing teacher checkpoint is refused at once (exit 2, the valid
    names listed), before the suite's teacher is trained into OUT/teacher."""
    base = [sys.executable, osp.join(ROOT, 'tools', 'benchmark.py'), '--suite', 'fmnist',
            '--out', str(tmp_path / 'out')]
    typo = subprocess.run(base + ['--methods', 'dfad,deepinversoin'], capture_output=True,
                          text=True, timeout=120)
    assert typo.returncode == 2
    assert "unknown --methods ['deepinversoin']" in typo.stderr and "'dfad'" in typo.stderr
    missing = subprocess.run(base + ['--teacher-ckpt', str(tmp_path / 'none.pth')],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and 'does not exist' in missing.stderr
    assert not osp.exists(tmp_path / 'out' / 'teacher')


def test_config_folder_results_follow_the_documented_rows(tmp_path):
    """A config folder's README table is built from the docs page: a seeded row shows its
    mean and seed count, shared option sets their name, a row never run '-', and rewriting
    touches only the block between the markers."""
    from mmdfkd.benchmark import (RESULTS_BEGIN, RESULTS_END, format_folder_results,
                                  format_markdown, update_config_readmes)
    docs = str(tmp_path / 'docs' / 'benchmarks.md')
    (tmp_path / 'docs').mkdir()
    rows = [dict(method='fast_dfkd', access='white-box', teacher_acc=91.5, student_acc=80.5,
                 student_acc_at_mark=79.25, acc_at_s=180.0, wall_s=694, teacher_queries=42,
                 peak_rss_mb=900),
            dict(method='fast_dfkd-folded', access='white-box', teacher_acc=91.5,
                 student_acc=82.0, student_acc_seeds=[81.0, 83.0], seeds=[0, 1],
                 student_acc_std=1.41, student_acc_at_mark=None, acc_at_s=180.0, wall_s=778,
                 teacher_queries=43, peak_rss_mb=901)]
    update_docs(docs, 'fmnist', format_markdown('fmnist', rows, 'c'))
    table = format_folder_results('configs/fast_dfkd', docs).splitlines()
    assert ('| fmnist | fast_dfkd | `fast_dfkd_lenet5bn_lenet5half_fmnist.py` | - | 91.50 | '
            '80.50 | 79.25 @ 180 s | 694 | 42 |') in table
    folded = next(line for line in table if line.startswith('| fmnist | fast_dfkd-folded |'))
    assert '| student folded from the teacher, student lr 0.01' in folded
    assert '| 82.00 (mean of 2 seeds) | - | 778 | 43 |' in folded
    sliced = next(line for line in table if line.startswith('| fmnist | fast_dfkd-sliced |'))
    assert sliced.endswith('| `model.student_init_from_teacher=magnitude` | - | - | - | - | - |')
    # every fast_dfkd row of the suites and nothing else
    assert sum(line.startswith('| fmnist') for line in table) == sum(
        osp.dirname(r.config) == 'configs/fast_dfkd' for r in SUITES['fmnist'].rows)

    readme = tmp_path / 'configs' / 'fast_dfkd' / 'README.md'
    readme.parent.mkdir(parents=True)
    readme.write_text(f'# Fast-DFKD\n\nabove\n\n{RESULTS_BEGIN}\nold table\n{RESULTS_END}\n'
                      'below\n')
    assert update_config_readmes(docs, str(tmp_path)) == [str(readme)]
    text = readme.read_text()
    assert 'old table' not in text and text.startswith('# Fast-DFKD\n\nabove\n\n')
    assert text.endswith(f'{RESULTS_END}\nbelow\n') and '80.50 | 79.25 @ 180 s' in text
    assert update_config_readmes(docs, str(tmp_path)) == []  # already up to date


def test_config_readmes_list_their_configs_and_the_documented_results():
    """Every method folder of configs/ has a README naming each of its configs (and no
    config that is not there), and its results table is what docs/benchmarks.md holds, so
    neither goes stale when a config or a documented row changes."""
    import glob
    import re

    from mmdfkd.benchmark import (RESULTS_BEGIN, RESULTS_END, config_folders,
                                  format_folder_results)
    docs = osp.join(ROOT, 'docs', 'benchmarks.md')
    folders = sorted(osp.relpath(d, ROOT) for d in glob.glob(osp.join(ROOT, 'configs', '*'))
                     if osp.isdir(d) and osp.basename(d) != '_base_')
    assert set(config_folders()) <= set(folders)
    for folder in folders:
        readme = osp.join(ROOT, folder, 'README.md')
        assert osp.isfile(readme), f'{folder} has no README.md'
        text = open(readme).read()
        for config in glob.glob(osp.join(ROOT, folder, '*.py')):
            assert f'`{osp.basename(config)}`' in text, f'{readme} does not name {config}'
        for named in re.findall(r'`([\w./-]+\.py)`', text):
            where = osp.join(ROOT, named) if '/' in named else osp.join(ROOT, folder, named)
            assert osp.isfile(where), f'{readme} names {named}, which does not exist'
        if folder in config_folders():
            block = text.split(RESULTS_BEGIN, 1)[1].split(RESULTS_END, 1)[0]
            assert block == '\n' + format_folder_results(folder, docs), (
                f'{readme} is out of date: python -c "from mmdfkd.benchmark import '
                "update_config_readmes; update_config_readmes('docs/benchmarks.md', '.')\"")
