"""What validation and testing run: the student, and, for ``TeacherAgreement``, the teacher."""
import torch
from torch import nn

from mmdfkd.evaluation import TEACHER_LABEL_FIELD


def student_forward_for_eval(algorithm: nn.Module, inputs: torch.Tensor,
                             data_samples: list | None, mode: str) -> torch.Tensor | list:
    """Run ``algorithm.student`` in ``mode``; in ``'predict'`` mode with the algorithm's
    ``eval_teacher_agreement`` on, also write the teacher's top-1 class of every image into
    its data sample (``teacher_pred_label``, read by ``TeacherAgreement``) through the
    algorithm's ``teacher_labels``, so the images count as queries (and a black-box teacher's
    cache and budget apply) as in training."""
    outputs = algorithm.student(inputs, data_samples, mode=mode)
    if mode == 'predict' and algorithm.eval_teacher_agreement:
        labels = algorithm.teacher_labels(inputs).view(-1)
        for sample, label in zip(outputs, labels):
            sample.set_field(label.to(inputs.device), TEACHER_LABEL_FIELD)
    return outputs
