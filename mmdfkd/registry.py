"""mmdfkd registries.

Every registry is a child of mmpretrain's registry of the same role, so a config with
``default_scope='mmdfkd'`` finds mmdfkd modules first and then falls back to mmpretrain's
(e.g. ``type='ResNet_CIFAR'`` or ``type='LinearClsHead'`` need no scope prefix), and finally to
mmengine's root registries.
"""
from mmengine.registry import Registry
from mmpretrain.registry import DATA_SAMPLERS as MMPRETRAIN_DATA_SAMPLERS
from mmpretrain.registry import DATASETS as MMPRETRAIN_DATASETS
from mmpretrain.registry import EVALUATORS as MMPRETRAIN_EVALUATORS
from mmpretrain.registry import HOOKS as MMPRETRAIN_HOOKS
from mmpretrain.registry import LOG_PROCESSORS as MMPRETRAIN_LOG_PROCESSORS
from mmpretrain.registry import LOOPS as MMPRETRAIN_LOOPS
from mmpretrain.registry import METRICS as MMPRETRAIN_METRICS
from mmpretrain.registry import MODEL_WRAPPERS as MMPRETRAIN_MODEL_WRAPPERS
from mmpretrain.registry import MODELS as MMPRETRAIN_MODELS
from mmpretrain.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS
from mmpretrain.registry import OPTIM_WRAPPERS as MMPRETRAIN_OPTIM_WRAPPERS
from mmpretrain.registry import OPTIMIZERS as MMPRETRAIN_OPTIMIZERS
from mmpretrain.registry import PARAM_SCHEDULERS as MMPRETRAIN_PARAM_SCHEDULERS
from mmpretrain.registry import RUNNERS as MMPRETRAIN_RUNNERS
from mmpretrain.registry import TASK_UTILS as MMPRETRAIN_TASK_UTILS
from mmpretrain.registry import TRANSFORMS as MMPRETRAIN_TRANSFORMS
from mmpretrain.registry import VISBACKENDS as MMPRETRAIN_VISBACKENDS
from mmpretrain.registry import VISUALIZERS as MMPRETRAIN_VISUALIZERS
from mmpretrain.registry import \
    WEIGHT_INITIALIZERS as MMPRETRAIN_WEIGHT_INITIALIZERS

from mmdfkd.utils.model_reference import build_model_resolving_references

__all__ = [
    'RUNNERS', 'LOOPS', 'HOOKS', 'LOG_PROCESSORS', 'OPTIMIZERS', 'OPTIM_WRAPPERS',
    'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS', 'DATASETS', 'DATA_SAMPLERS',
    'TRANSFORMS', 'MODELS', 'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'TASK_UTILS',
    'METRICS', 'EVALUATORS', 'VISUALIZERS', 'VISBACKENDS'
]


def _child(name: str, parent: Registry, location: str) -> Registry:
    return Registry(name, parent=parent, locations=[location])


RUNNERS = _child('runner', MMPRETRAIN_RUNNERS, 'mmdfkd.engine')
LOOPS = _child('loop', MMPRETRAIN_LOOPS, 'mmdfkd.engine')
HOOKS = _child('hook', MMPRETRAIN_HOOKS, 'mmdfkd.engine')
LOG_PROCESSORS = _child('log_processor', MMPRETRAIN_LOG_PROCESSORS, 'mmdfkd.engine')
OPTIMIZERS = _child('optimizer', MMPRETRAIN_OPTIMIZERS, 'mmdfkd.engine')
OPTIM_WRAPPERS = _child('optim_wrapper', MMPRETRAIN_OPTIM_WRAPPERS, 'mmdfkd.engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMPRETRAIN_OPTIM_WRAPPER_CONSTRUCTORS,
                                    'mmdfkd.engine')
PARAM_SCHEDULERS = _child('parameter scheduler', MMPRETRAIN_PARAM_SCHEDULERS,
                          'mmdfkd.engine')
DATASETS = _child('dataset', MMPRETRAIN_DATASETS, 'mmdfkd.datasets')
DATA_SAMPLERS = _child('data sampler', MMPRETRAIN_DATA_SAMPLERS, 'mmdfkd.datasets')
TRANSFORMS = _child('transform', MMPRETRAIN_TRANSFORMS, 'mmdfkd.datasets')
# A classifier may be named by its config file (`dict(cfg_path='mmpretrain::...')`,
# mmdfkd.utils.model_reference) wherever a model config goes.
MODELS = Registry('model', parent=MMPRETRAIN_MODELS, locations=['mmdfkd.models'],
                  build_func=build_model_resolving_references)
MODEL_WRAPPERS = _child('model_wrapper', MMPRETRAIN_MODEL_WRAPPERS, 'mmdfkd.models')
WEIGHT_INITIALIZERS = _child('weight initializer', MMPRETRAIN_WEIGHT_INITIALIZERS,
                             'mmdfkd.models')
TASK_UTILS = _child('task util', MMPRETRAIN_TASK_UTILS, 'mmdfkd.models')
METRICS = _child('metric', MMPRETRAIN_METRICS, 'mmdfkd.evaluation')
EVALUATORS = _child('evaluator', MMPRETRAIN_EVALUATORS, 'mmdfkd.evaluation')
VISUALIZERS = _child('visualizer', MMPRETRAIN_VISUALIZERS, 'mmdfkd.visualization')
VISBACKENDS = _child('vis_backend', MMPRETRAIN_VISBACKENDS, 'mmdfkd.visualization')
