"""mmdfkd: data-free knowledge distillation for the OpenMMLab 2.x stack."""
import warnings

# mmdfkd installs mmcv-lite on purpose (classifiers need no compiled ops); mmcv's advice to
# install the full mmcv for MultiScaleDeformableAttention, printed by every tool, only misleads.
warnings.filterwarnings('ignore', message='Fail to import ``MultiScaleDeformableAttention``')

from mmpretrain.utils import register_all_modules as _register_mmpretrain  # noqa: E402

from .version import __version__  # noqa: E402

# mmdfkd's registries are children of mmpretrain's; the parents must be populated so that
# configs can name mmpretrain modules (ImageClassifier, Accuracy, UniversalVisualizer...).
_register_mmpretrain(init_default_scope=False)

# Importing the sub-packages registers every mmdfkd module, and ``engine`` also installs the
# checkpoint loader that makes ``resume=True`` work on torch >= 2.6.
from . import datasets, engine, evaluation, models  # noqa: F401,E402

__all__ = ['__version__']
