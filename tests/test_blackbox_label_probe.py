"""tools/analysis_tools/blackbox_label_probe.py and the pair draw it shares with DIP-KD."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch
from tests.conftest import ROOT, config_path, needs_fmnist

from mmdfkd.models.synthesizers import draw_differing_pairs
from mmdfkd.registry import MODELS

TOOL = osp.join(ROOT, 'tools', 'analysis_tools', 'blackbox_label_probe.py')
LENET5 = dict(type='ImageClassifier',
              backbone=dict(type='LeNet', in_channels=1, width=1.0, with_bn=False),
              head=dict(type='LinearClsHead', num_classes=10, in_channels=84))


def load_tool():
    spec = importlib.util.spec_from_file_location('blackbox_label_probe', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_differing_pairs_differ_and_balanced_draws_favour_rare_labels():
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    first, second = draw_differing_pairs(labels, 200, torch.Generator().manual_seed(0))
    assert first.shape == second.shape == (200, )
    assert (labels[first] != labels[second]).all()
    again = draw_differing_pairs(labels, 200, torch.Generator().manual_seed(0))
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    labels = torch.tensor([0] * 90 + [1] * 9 + [2])
    rare = [(labels[torch.cat(draw_differing_pairs(
        labels, 500, torch.Generator().manual_seed(1), balanced=b))] == 2).float().mean()
        for b in (False, True)]
    assert rare[1] > 5 * rare[0]
    # One class only: equal-label pairs fill the draw instead of failing.
    same = draw_differing_pairs(torch.zeros(10, dtype=torch.long), 4,
                                torch.Generator().manual_seed(0))
    assert same[0].shape == (4, )


def test_target_guidance_makes_the_primer_read_the_target_class():
    tool = load_tool()
    torch.manual_seed(0)
    primer = MODELS.build(LENET5).eval()
    candidates = torch.randn(64, 1, 32, 32) * 0.5
    args = type('Args', (), dict(guide_lr=0.05, guide_steps=20, guide_tv=0.0))()
    low, high = torch.full((1, 1, 1, 1), -1.0), torch.full((1, 1, 1, 1), 1.0)
    target = torch.randint(10, (64, ), generator=torch.Generator().manual_seed(3))
    moved = tool.guide_candidates(primer, candidates, 'target', args, (low, high),
                                  torch.Generator().manual_seed(3))
    with torch.no_grad():
        before = primer(candidates, mode='tensor').log_softmax(1).gather(1, target[:, None])
        after = primer(moved, mode='tensor').log_softmax(1).gather(1, target[:, None])
    assert (after > before).float().mean() > 0.9
    assert moved.min() >= -1 and moved.max() <= 1  # clamped to the pixel range
    assert moved.dtype == torch.float32 and torch.equal(moved, moved.half().float())


@needs_fmnist
def test_probe_buys_exactly_its_labels_in_guided_rounds(tmp_path):
    init_teacher = MODELS.build(LENET5)
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': init_teacher.state_dict()}, ckpt)
    cmd = [sys.executable, TOOL,
           config_path('dipkd', 'dipkd_labelmix_texture_lenet5_lenet5_fmnist.py'),
           '--labels', '400', '--rounds', '2', '--guide', 'boundary', '--guide-steps', '2',
           '--primer-steps', '3', '--steps', '3', '--batch-size', '16',
           '--cfg-options', f'teacher_ckpt={ckpt}', 'model.synthesizer.batch_size=100']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert sum(result['label_counts']) == 400  # 200 per round, every image labelled
    assert 0 < result['queries'] <= 400  # repeats come from the label cache, not the budget
    assert 0 <= result['accuracy'] <= 100 and len(result['per_class']) == 10


def test_guide_needs_rounds():
    proc = subprocess.run([sys.executable, TOOL, 'unused.py', '--guide', 'target'],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode != 0 and '--guide needs --rounds >= 2' in proc.stderr


if __name__ == '__main__':
    pytest.main([__file__])


def test_train_classifier_augments_every_batch_it_learns_from():
    tool = load_tool()
    from mmdfkd.models.utils import BatchAugment
    intensity = BatchAugment([dict(type='RandomIntensityScale', scale=(0.5, 1.5))])
    seen = []

    def augment(x):
        out = intensity(x)
        seen.append((x.clone(), out))
        return out

    images = torch.rand(64, 1, 32, 32)
    labels = torch.arange(64) % 10
    args = type('Args', (), dict(lr=0.01, weight_decay=0.0, batch_size=8, mixup=0.0,
                                 label_smoothing=0.0))()
    tool.train_classifier(LENET5, images, labels, args, steps=5, seed=0, augment=augment)
    assert len(seen) == 5  # one call per step, on the batch of that step
    for before, after in seen:
        assert after.shape == before.shape == (8, 1, 32, 32)
        ratio = after.flatten(1).sum(1) / before.flatten(1).sum(1)
        # one factor per image, in range (no clamping at 255 for [0, 1] pixels)
        assert ((ratio > 0.5 - 1e-4) & (ratio < 1.5 + 1e-4)).all() and ratio.std() > 0


def test_probe_augment_flag_needs_a_config_augment():
    cmd = [sys.executable, TOOL,
           config_path('dipkd', 'dipkd_labelmix_texture_lenet5_lenet5_fmnist.py'),
           '--augment', '--labels', '10']
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode != 0
    assert 'model.augment' in proc.stderr and 'sets none' in proc.stderr
