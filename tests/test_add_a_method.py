"""docs/add_a_method.md works as written: its synthesizer and config train a real run."""
import os.path as osp
import re
import uuid

import torch

from mmdfkd.apis import build_runner, load_config

from .conftest import ROOT, needs_fmnist, small_eval_options

GUIDE = osp.join(ROOT, 'docs', 'add_a_method.md')


def guide_files() -> dict[str, str]:
    """The files the guide shows, by the name it gives them."""
    text = open(GUIDE).read()
    return dict(re.findall(r'File `([^`]+)`:\n\n```python\n(.*?)```', text, flags=re.S))


@needs_fmnist
def test_the_guides_method_trains_on_the_teachers_logits(teacher_ckpt, tmp_path, monkeypatch):
    files = guide_files()
    config_name = 'my_project/prior_kd_lenet5bn_lenet5half_fmnist.py'
    assert set(files) == {'my_project/prior_kd_synthesizer.py', config_name}
    for name, code in files.items():
        # The guide's project folder sits in the checkout; here it is in a temporary folder.
        code = code.replace("'../configs/", f"'{ROOT}/configs/")
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))

    options = dict(small_eval_options(), teacher_ckpt=teacher_ckpt)
    options.update({'train_cfg.max_iters': 2, 'train_cfg.val_interval': 2,
                    'default_hooks.checkpoint.interval': 2, 'default_hooks.logger.interval': 1,
                    'model.synthesizer.batch_size': 32, 'model.student_batch_size': 32,
                    'model.student_steps': 1})
    cfg = load_config(str(tmp_path / config_name), cfg_options=options,
                      work_dir=str(tmp_path / 'run'))
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:12]}'
    runner = build_runner(cfg)
    student_before = {k: v.clone() for k, v in runner.model.student.state_dict().items()}
    runner.train()

    model = runner.model
    synthesizer = model.synthesizer
    assert type(synthesizer).__name__ == 'PriorKDSynthesizer'
    assert len(synthesizer.pool) == 2 * 32  # one batch of priors per iteration
    # what the pool holds is the teacher's answer on each pooled image
    images, logits = synthesizer.pool.sample(16)
    with torch.no_grad():
        expected = model.teacher(images, mode='tensor')
    # (a batch of 16 against the pooled batches of 32: float rounding differs slightly)
    torch.testing.assert_close(logits, expected, atol=1e-3, rtol=1e-3)
    assert model.teacher_queries >= 2 * 32
    moved = [k for k, v in model.student.state_dict().items()
             if v.is_floating_point() and not torch.equal(v, student_before[k])]
    assert moved, 'the student did not learn'
    assert osp.isfile(osp.join(str(tmp_path / 'run'), 'iter_2.pth'))
