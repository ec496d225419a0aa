"""tools/test.py as users call it: metrics, dumped predictions and drawn predictions."""
import json
import os.path as osp
import pickle
import subprocess
import sys

import torch

from .conftest import ROOT, config_path, needs_fmnist, small_eval_options
from .runner_utils import last_checkpoint, run_datafree

CONFIG = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'


def _test_tool(*args: str, tool: str = 'test.py') -> subprocess.CompletedProcess:
    options = [f'{k}={v}' for k, v in small_eval_options(100).items()]
    return subprocess.run([sys.executable, osp.join(ROOT, 'tools', tool), *args,
                           '--cfg-options', *options],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


@needs_fmnist
def test_test_tool_dumps_predictions_and_draws_them(teacher_ckpt, tmp_path):
    runner = run_datafree(CONFIG, str(tmp_path / 'run'), teacher_ckpt, max_iters=1)
    ckpt = last_checkpoint(str(tmp_path / 'run'))
    config = config_path(*CONFIG.split('/'))

    metrics = _test_tool(config, ckpt, '--work-dir', str(tmp_path / 'm'),
                         '--out', str(tmp_path / 'metrics.json'))
    assert metrics.returncode == 0, metrics.stderr[-3000:]
    top1 = json.loads((tmp_path / 'metrics.json').read_text())['accuracy/top1']

    preds = _test_tool(config, ckpt, '--work-dir', str(tmp_path / 'p'),
                       '--out', str(tmp_path / 'preds.pkl'), '--out-item', 'pred',
                       '--show-dir', str(tmp_path / 'vis'), '--interval', '40')
    assert preds.returncode == 0, preds.stderr[-3000:]
    with open(tmp_path / 'preds.pkl', 'rb') as f:
        results = pickle.load(f)
    assert len(results) == 100
    scores = torch.stack([r['pred_score'] for r in results])
    labels = torch.cat([r['pred_label'] for r in results])
    truth = torch.cat([r['gt_label'] for r in results])
    torch.testing.assert_close(scores.sum(1), torch.ones(100))
    assert torch.equal(scores.argmax(1), labels)
    # the dumped predictions are the ones the metric was computed from
    assert abs((labels == truth).float().mean().item() * 100 - top1) < 1e-3
    # every 40th of the 100 test images, enlarged so the labels are readable
    drawn = sorted(p.name for p in (tmp_path / 'vis').iterdir())
    assert drawn == ['0_0.png', '40_0.png', '80_0.png']
    import cv2
    drawing = cv2.imread(str(tmp_path / 'vis' / '0_0.png'))
    assert min(drawing.shape[:2]) == 224
    # the garment in grey (below the label box), not in a colour map
    garment = drawing[100:].astype(int)
    assert garment.std() > 0 and (garment == garment[..., :1]).all()

    # the confusion matrix, counted from the dump and from a fresh test of the checkpoint
    expected = torch.zeros(10, 10, dtype=torch.long)
    for t, p in zip(truth.tolist(), labels.tolist()):
        expected[t, p] += 1
    for source, name in ((str(tmp_path / 'preds.pkl'), 'cm_pkl'), (ckpt, 'cm_ckpt')):
        cm = _test_tool(config, source, '--work-dir', str(tmp_path / name),
                        '--out', str(tmp_path / f'{name}.json'),
                        '--show-path', str(tmp_path / f'{name}.png'),
                        tool='analysis_tools/confusion_matrix.py')
        assert cm.returncode == 0, cm.stderr[-3000:]
        written = json.loads((tmp_path / f'{name}.json').read_text())
        assert torch.equal(torch.tensor(written['confusion_matrix']), expected), name
        assert abs(written['accuracy'] - top1) < 1e-3
        assert written['classes'][6] == 'Shirt' and 'Shirt' in cm.stdout
        assert (tmp_path / f'{name}.png').stat().st_size > 0

    # --tta averages the student's scores on each image and its mirror image
    tta = _test_tool(config, ckpt, '--work-dir', str(tmp_path / 't'), '--tta',
                     '--out', str(tmp_path / 'tta.pkl'), '--out-item', 'pred')
    assert tta.returncode == 0, tta.stderr[-3000:]
    with open(tmp_path / 'tta.pkl', 'rb') as f:
        tta_scores = torch.stack([r['pred_score'] for r in pickle.load(f)])
    from mmdfkd.datasets.fashion_mnist import FashionMNISTIdx
    test_split = FashionMNISTIdx(split='test', indices=100, lazy_init=False)
    pixels = torch.stack([torch.from_numpy(test_split.get_data_info(i)['img'])
                          for i in range(100)]).float().unsqueeze(1)
    images = (torch.nn.functional.pad(pixels, (2, 2, 2, 2)) - 72.94) / 90.0
    student = runner.model.student.eval()
    with torch.no_grad():
        plain = student(images, mode='tensor').softmax(1)
        mirrored = student(images.flip(3), mode='tensor').softmax(1)
    torch.testing.assert_close(plain, scores, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(tta_scores, (plain + mirrored) / 2, atol=1e-5, rtol=1e-4)

    refused = _test_tool(config, ckpt, '--out', str(tmp_path / 'preds.json'),
                         '--out-item', 'pred')
    assert refused.returncode != 0 and '.pkl or .pickle' in refused.stderr
