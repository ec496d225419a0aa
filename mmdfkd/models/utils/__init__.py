from .augment import BatchAugment, PartialMixup, RandomIntensityScale, RandomPatchErasing
from .classifier import classifier_logits_and_features
from .recorder import ModuleOutputRecorder, deepest_output, output_shapes, stage_names
from .fit_check import check_batch_sizes, check_models_fit, check_step_sizes, count_classes
from .freeze import evaluation_mode, frozen_parameters
from .meta import META_METHODS, MetaGradient
from .targets import BalancedLabelSampler
from .teacher_fold import fold_student_from_teacher, weighted_kmeans
from .teacher_slice import CHANNEL_ORDERS, STUDENT_INIT_MODES, init_student_from_teacher

__all__ = [
    'BatchAugment', 'PartialMixup', 'RandomIntensityScale', 'RandomPatchErasing',
    'classifier_logits_and_features',
    'ModuleOutputRecorder',
    'deepest_output', 'output_shapes', 'stage_names',
    'frozen_parameters', 'check_batch_sizes', 'check_models_fit', 'check_step_sizes',
    'count_classes',
    'evaluation_mode', 'MetaGradient', 'META_METHODS', 'BalancedLabelSampler',
    'CHANNEL_ORDERS', 'STUDENT_INIT_MODES', 'init_student_from_teacher',
    'fold_student_from_teacher', 'weighted_kmeans'
]
