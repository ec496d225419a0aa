from . import algorithms, backbones, classifiers, losses, synthesizers, teachers, utils, wrappers  # noqa: F401
from .algorithms import *  # noqa: F401,F403
from .backbones import *  # noqa: F401,F403
from .classifiers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .synthesizers import *  # noqa: F401,F403
from .teachers import *  # noqa: F401,F403
