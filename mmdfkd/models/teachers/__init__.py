from .base import (ACCESS_LEVELS, BaseTeacher, QueryBudgetExceeded, TeacherAccessError,
                   access_rank, require_access)
from .remote import RemoteTeacherClient, TeacherUnavailableError
from .sources import CallableSource, ClassifierSource, OnnxClassifier, load_classifier_weights
from .wrappers import HardLabelTeacher, SoftLabelTeacher, WhiteBoxTeacher

__all__ = [
    'ACCESS_LEVELS', 'BaseTeacher', 'QueryBudgetExceeded', 'TeacherAccessError', 'access_rank',
    'require_access', 'RemoteTeacherClient', 'TeacherUnavailableError', 'CallableSource',
    'ClassifierSource', 'OnnxClassifier', 'load_classifier_weights', 'HardLabelTeacher',
    'SoftLabelTeacher',
    'WhiteBoxTeacher'
]
