from .config import build_runner, load_config

__all__ = ['load_config', 'build_runner']
