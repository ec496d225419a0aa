"""Validation without labels: how often the student gives the teacher's top-1 class."""
from collections.abc import Sequence

import torch
from mmengine.evaluator import BaseMetric

from mmdfkd.registry import METRICS

TEACHER_LABEL_FIELD = 'teacher_pred_label'


@METRICS.register_module()
class TeacherAgreement(BaseMetric):
    """Top-1 agreement of student and teacher on the validation/test images, in percent.

    A data-free user often has no labelled images at all, only unlabelled ones (inputs the
    deployed model will see). The student's accuracy cannot be measured on them, but its
    agreement with the teacher can: a student that agrees with a 91 % teacher on 95 % of the
    images is within a few points of it. The images need no labels (mmpretrain's
    ``CustomDataset(with_label=False)`` reads a plain folder of images); with labelled ones
    the metric sits next to ``Accuracy``.

    The algorithm asks the teacher for each image's top-1 class only when its
    ``eval_teacher_agreement`` is on (each image is one teacher query, counted as every
    query is; a black-box teacher's answers are cached, so a second validation on the same
    images costs nothing). Logged as ``agreement/top1``; ``agreement/per_class`` (the
    share of each teacher class the student also gives) with ``per_class=True``.

    Args:
        num_classes (int, optional): Classes for ``per_class``; default: the dataset's class
            names (its ``metainfo``), else the largest label seen plus one.
        per_class (bool): Also report the agreement within each teacher class.
    """

    default_prefix = 'agreement'

    def __init__(self, num_classes: int | None = None, per_class: bool = False,
                 collect_device: str = 'cpu', prefix: str | None = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_classes, self.per_class = num_classes, per_class

    def process(self, data_batch: dict | tuple | None, data_samples: Sequence[dict]) -> None:
        """Keep each image's (student, teacher) top-1 classes."""
        for sample in data_samples:
            if TEACHER_LABEL_FIELD not in sample:
                raise ValueError(
                    'TeacherAgreement found no teacher label on the predictions: set '
                    'model.eval_teacher_agreement=True, so that validation and testing also ask '
                    'the teacher for its top-1 class (one counted query per image).')
            student = int(torch.as_tensor(sample['pred_label']).view(-1)[0])
            teacher = int(torch.as_tensor(sample[TEACHER_LABEL_FIELD]).view(-1)[0])
            self.results.append((student, teacher))

    def compute_metrics(self, results: list) -> dict:
        """``top1`` (and ``per_class``) agreement in percent."""
        pairs = torch.tensor(results, dtype=torch.long).view(-1, 2)
        same = pairs[:, 0] == pairs[:, 1]
        metrics = {'top1': float(same.float().mean() * 100)}
        if self.per_class:
            classes = (self.dataset_meta or {}).get('classes') or ()
            count = self.num_classes or len(classes) or int(pairs.max()) + 1
            seen = torch.bincount(pairs[:, 1], minlength=count).double()
            agreed = torch.bincount(pairs[same, 1], minlength=count).double()
            metrics['per_class'] = (agreed / seen * 100).tolist()  # NaN: class never given
        return metrics
