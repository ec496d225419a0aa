"""Evaluate a checkpoint on a config's real test split (``tools/test.py`` and
``tools/analysis_tools/confusion_matrix.py``)."""
import os.path as osp

from mmengine.config import Config
from mmengine.runner import Runner

from mmdfkd.engine.runner.checkpoint_loader import check_checkpoint_fits
from .config import build_runner


def prepare_test_config(cfg: Config, config: str, checkpoint: str) -> None:
    """Point ``cfg`` at ``checkpoint`` for a test-only run; refuse a config without a test
    split. A data-free config whose ``teacher_ckpt`` is not on this machine takes the
    teacher's weights from the distillation checkpoint, which holds them too."""
    missing = [k for k in ('test_dataloader', 'test_evaluator') if cfg.get(k) is None]
    if missing:
        raise ValueError(f'{config} has no {" / ".join(missing)}: there is no real test split '
                         'to evaluate on. Add them (e.g. from '
                         'configs/_base_/datasets/cifar10_test_only.py).')
    if cfg.get('teacher_ckpt') is not None and not osp.isfile(str(cfg.teacher_ckpt)):
        cfg.teacher_ckpt = checkpoint
    cfg.load_from = checkpoint
    cfg.resume = False


def build_test_runner(cfg: Config, checkpoint: str, tool: str) -> Runner:
    """The runner of a config prepared by :func:`prepare_test_config`, after checking that
    ``checkpoint`` holds the weights it evaluates (mmengine loads ``load_from``
    non-strictly, so a wrong file would be tested as random weights)."""
    runner = build_runner(cfg)
    check_checkpoint_fits(runner.model, checkpoint, tool)
    return runner
