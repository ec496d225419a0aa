"""Metrics of mmdfkd's own (mmpretrain's, e.g. ``Accuracy``, come through the registry)."""
from .teacher_agreement import TEACHER_LABEL_FIELD, TeacherAgreement

__all__ = ['TeacherAgreement', 'TEACHER_LABEL_FIELD']
