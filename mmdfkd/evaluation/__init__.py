"""Metrics: mmpretrain's (e.g. ``Accuracy``) through the registry parents, and
``TeacherAgreement`` for validation on unlabelled images."""
from .metrics import TEACHER_LABEL_FIELD, TeacherAgreement

__all__ = ['TeacherAgreement', 'TEACHER_LABEL_FIELD']
