from .config import build_runner, finish_distributed, load_config

__all__ = ['load_config', 'build_runner', 'finish_distributed']
