"""Probe what a hard-label teacher's labels teach: buy labels, train a fresh classifier on them.

    python tools/analysis_tools/blackbox_label_probe.py CONFIG --labels 20000 [--seed 0]
        [--rounds 2 --guide {target,boundary,away} --guide-steps 10] [--cfg-options ...]
    python tools/analysis_tools/blackbox_label_probe.py CONFIG --from-checkpoint CKPT
        [--label-smoothing 0.1] [--mixup 0.4] [--weight-decay 5e-3] [--augment]

An analysis tool behind the black-box probes in docs/benchmarks.md, not a training entry point
(no runner, no checkpoints). From a DIP-KD CONFIG it builds the teacher wrapper (every image
sent counts as a query) and the synthesizer, buys ``--labels`` top-1 labels with the
synthesizer's own recipe (plain priors, then its share of label mixes), trains a fresh copy of
the config's student on them (class-balanced CE, no augmentation) and prints its accuracy on
the real test split, which is read only for that.

``--rounds K --guide MODE`` buys the labels in K equal rounds. Before each later round a primer
(the student's architecture) learns the labels bought so far, and the round's candidates
(fresh priors and mixes of pooled pairs, as in round one) take ``--guide-steps`` Adam steps
against it before the teacher labels them: ``target`` towards a random class (CE),
``boundary`` towards the primer's boundary between its top two classes, ``away`` away from its
answer. The primer is the learner's own model, so guidance costs no query.

``--from-checkpoint`` trains on the labelled pool of a finished DIP-KD run instead of buying
labels (the training-side options then compare primer recipes on the same labels).
"""
import argparse
import json
import os.path as osp
import sys
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from mmengine.config import Config  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import mmdfkd  # noqa: E402,F401
from mmdfkd.apis.cli_types import (ConfigOptionsAction, positive_int,  # noqa: E402
                                   positive_number)
from mmdfkd.apis.config import merge_cfg_options  # noqa: E402
from mmdfkd.models.synthesizers import SyntheticDataPool  # noqa: E402
from mmdfkd.models.utils import BatchAugment  # noqa: E402
from mmdfkd.registry import DATASETS, MODELS  # noqa: E402

GUIDES = ('none', 'target', 'boundary', 'away')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a DIP-KD config (configs/dipkd/)')
    parser.add_argument('--labels', type=positive_int, default=20000,
                        help='teacher queries to spend')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the priors bought and of the trained classifier')
    parser.add_argument('--rounds', type=positive_int, default=1,
                        help='buy the labels in this many equal rounds (>= 2 needs --guide)')
    parser.add_argument('--guide', choices=GUIDES, default='none',
                        help="how later rounds' candidates move against a primer trained on "
                             'the labels bought so far (see the module docstring)')
    parser.add_argument('--guide-steps', type=positive_int, default=10,
                        help='Adam steps per guided candidate')
    parser.add_argument('--guide-lr', type=positive_number, default=0.05,
                        help='step size of the guidance')
    parser.add_argument('--guide-tv', type=float, default=0.0, help='weight of a TV prior')
    parser.add_argument('--primer-steps', type=positive_int, default=1500,
                        help="training steps of each round's primer")
    parser.add_argument('--from-checkpoint', default=None,
                        help='train on this DIP-KD checkpoint\'s labelled pool instead')
    parser.add_argument('--steps', type=positive_int, default=3000, help='training steps')
    parser.add_argument('--batch-size', type=positive_int, default=128,
                        help='batch size of the trained classifier (and primers)')
    parser.add_argument('--lr', type=positive_number, default=0.05,
                        help='SGD learning rate (momentum 0.9)')
    parser.add_argument('--weight-decay', type=float, default=5e-4, help='SGD weight decay')
    parser.add_argument('--label-smoothing', type=float, default=0.0,
                        help='label smoothing of the CE (0 = off)')
    parser.add_argument('--mixup', type=float, default=0.0,
                        help='Beta(a, a) mixup of labelled pairs with mixed CE (0 = off)')
    parser.add_argument('--augment', action='store_true',
                        help="apply the config's model.augment to every training batch, as "
                             "DIPKD's primer and student phases do (the labels stay those "
                             "bought for the unaugmented images)")
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help='config overrides, as for tools/train.py')
    args = parser.parse_args()
    if args.rounds < 1 or (args.rounds > 1) != (args.guide != 'none'):
        parser.error('--guide needs --rounds >= 2 (and --rounds >= 2 needs a --guide)')
    return args


def real_test_split(cfg: Config, image_shape: tuple[int, int, int]
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split, centre-padded to ``image_shape`` and normalised like the teacher's
    input (``model.data_preprocessor``)."""
    dataset_cfg = dict(cfg.test_dataloader.dataset)
    dataset_cfg['pipeline'] = []
    samples = DATASETS.build(dataset_cfg).load_data_list()
    images = torch.from_numpy(np.stack([s['img'] for s in samples])).float()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    else:
        images = images.permute(0, 3, 1, 2)
    _, h, w = image_shape
    dh, dw = h - images.size(2), w - images.size(3)
    images = F.pad(images, (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2))
    pre = cfg.model.data_preprocessor
    mean = torch.tensor(pre['mean'], dtype=torch.float).view(1, -1, 1, 1)
    std = torch.tensor(pre['std'], dtype=torch.float).view(1, -1, 1, 1)
    labels = torch.tensor([int(s['gt_label']) for s in samples])
    return (images - mean) / std, labels


@torch.no_grad()
def predict(model: torch.nn.Module, images: torch.Tensor, chunk: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(images[i:i + chunk], mode='tensor')
                      for i in range(0, len(images), chunk)])


def train_classifier(model_cfg: dict, images: torch.Tensor, labels: torch.Tensor,
                     args: argparse.Namespace, steps: int, seed: int,
                     augment: Callable[[torch.Tensor], torch.Tensor] | None = None
                     ) -> torch.nn.Module:
    """A fresh classifier trained with class-balanced CE (SGD, cosine) on labelled images,
    each batch passed through ``augment`` first when one is given."""
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9,
                                weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    weights = 1.0 / torch.bincount(labels).clamp(min=1).float()[labels]
    mix = torch.distributions.Beta(args.mixup, args.mixup) if args.mixup > 0 else None
    model.train()
    for _ in range(steps):
        index = torch.multinomial(weights, args.batch_size, replacement=True)
        x, y = images[index], labels[index]
        if augment is not None:
            x = augment(x)
        if mix is None:
            loss = F.cross_entropy(model(x, mode='tensor'), y,
                                   label_smoothing=args.label_smoothing)
        else:
            lam, perm = float(mix.sample()), torch.randperm(len(x))
            logits = model(lam * x + (1 - lam) * x[perm], mode='tensor')
            loss = (lam * F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
                    + (1 - lam) * F.cross_entropy(logits, y[perm],
                                                  label_smoothing=args.label_smoothing))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean((1, 2, 3))
            + (x[..., :, 1:] - x[..., :, :-1]).abs().mean((1, 2, 3)))


def guide_candidates(primer: torch.nn.Module, candidates: torch.Tensor, mode: str,
                     args: argparse.Namespace, pixel_range: tuple[torch.Tensor, torch.Tensor],
                     generator: torch.Generator, chunk: int = 500) -> torch.Tensor:
    """Move candidate images against the primer (its gradients are free) before buying."""
    low, high = pixel_range
    for p in primer.parameters():
        p.requires_grad_(False)
    moved = []
    for start in range(0, len(candidates), chunk):
        x = candidates[start:start + chunk].clone().requires_grad_(True)
        with torch.no_grad():
            first = primer(x, mode='tensor')
        target = torch.randint(first.size(1), (len(x), ), generator=generator)
        top2 = first.topk(2, dim=1).indices
        optimizer = torch.optim.Adam([x], lr=args.guide_lr)
        for _ in range(args.guide_steps):
            logits = primer(x, mode='tensor')
            if mode == 'target':
                loss = F.cross_entropy(logits, target, reduction='none')
            elif mode == 'boundary':
                half = torch.zeros_like(logits).scatter_(1, top2, 0.5)
                loss = -(half * logits.log_softmax(1)).sum(1)
            else:  # 'away'
                loss = -F.cross_entropy(logits, first.argmax(1), reduction='none')
            loss = loss + args.guide_tv * total_variation(x)
            optimizer.zero_grad()
            loss.sum().backward()
            optimizer.step()
            with torch.no_grad():
                x.copy_(torch.maximum(torch.minimum(x, high), low))
        # The pool stores float16; buy exactly what would be stored.
        moved.append(x.detach().half().float())
    return torch.cat(moved)


def pooled(pool: SyntheticDataPool) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = zip(*pool.iter_batches())
    return torch.cat(images), torch.cat(labels)


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    cfg = Config.fromfile(args.config)
    merge_cfg_options(cfg, args.cfg_options, args.config)
    from mmdfkd.engine.runner.data_free_runner import propagate_teacher_ckpt
    propagate_teacher_ckpt(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdfkd'))
    student_cfg = cfg.model.student.to_dict()
    augment = None
    if args.augment:
        if not cfg.model.get('augment'):
            raise ValueError(f'--augment applies model.augment, but {args.config} sets none; '
                             'add model.augment=[...] to the config (a list of transforms)')
        augment = BatchAugment(cfg.model.augment, groups=cfg.model.get('augment_groups'),
                               key='model.augment')
    start = time.time()
    result = dict(config=args.config, seed=args.seed)

    if args.from_checkpoint:
        from mmdfkd.apis.synthesize import build_from_checkpoint
        model = build_from_checkpoint(args.config, args.from_checkpoint, args.cfg_options)
        synthesizer = model.synthesizer
        images, labels = pooled(synthesizer.pool)
        result.update(source=args.from_checkpoint)
    else:
        per_round = args.labels // args.rounds
        teacher = MODELS.build(dict(cfg.model.teacher, query_budget=args.labels))
        synthesizer = MODELS.build(dict(
            cfg.model.synthesizer, num_images=per_round, seed=args.seed,
            pool=dict(type='SyntheticDataPool', max_images=args.labels)))
        workdir = tempfile.TemporaryDirectory(prefix='blackbox_probe_')
        synthesizer.set_work_dir(workdir.name)
        buyer = SimpleNamespace(teacher=teacher)
        while not synthesizer.done:  # round one: the config's recipe
            synthesizer.synthesize(buyer)
        generator = torch.Generator().manual_seed(args.seed)
        for round_ in range(1, args.rounds):
            images, labels = pooled(synthesizer.pool)
            primer = train_classifier(student_cfg, images, labels, args, args.primer_steps,
                                      seed=args.seed + round_)
            seed = args.seed + 1000 * round_
            n_plain = synthesizer.num_plain
            candidates = torch.cat([synthesizer.generate(n_plain, seed=seed),
                                    synthesizer.blend_labelled_pairs(per_round - n_plain,
                                                                     seed=seed)])
            candidates = guide_candidates(primer, candidates, args.guide, args,
                                          synthesizer.pixel_range, generator)
            synthesizer.pool.add(candidates, labels=teacher.query_labels(candidates))
        images, labels = pooled(synthesizer.pool)
        result.update(labels=args.labels, rounds=args.rounds, guide=args.guide,
                      guide_steps=args.guide_steps, guide_lr=args.guide_lr,
                      guide_tv=args.guide_tv, queries=int(teacher.queries))
    model = train_classifier(student_cfg, images, labels, args, args.steps, seed=args.seed,
                             augment=augment)
    test_images, test_labels = real_test_split(cfg, synthesizer.image_shape)
    pred = predict(model, test_images).argmax(1)
    num_classes = int(test_labels.max()) + 1
    result.update(
        steps=args.steps, lr=args.lr, weight_decay=args.weight_decay,
        label_smoothing=args.label_smoothing, mixup=args.mixup,
        augment=cfg.model.get('augment') if args.augment else None,
        label_counts=torch.bincount(labels, minlength=num_classes).tolist(),
        accuracy=round(100 * float((pred == test_labels).float().mean()), 2),
        per_class=[round(100 * float((pred[test_labels == c] == c).float().mean()), 1)
                   for c in range(num_classes)],
        wall_s=round(time.time() - start))
    print(json.dumps(result))


if __name__ == '__main__':
    main()
