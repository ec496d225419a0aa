"""mmdfkd: data-free knowledge distillation for the OpenMMLab 2.x stack."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_requirements(name: str) -> list[str]:
    """The requirement lines of ``requirements/<name>`` (comments and blanks dropped)."""
    with open(osp.join(HERE, 'requirements', name)) as f:
        return [line.strip() for line in f if line.strip() and not line.startswith('#')]


def read_version() -> str:
    """``__version__`` of ``mmdfkd/version.py``, read without importing the package."""
    scope: dict = {}
    with open(osp.join(HERE, 'mmdfkd', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmdfkd',
    version=read_version(),
    description='Data-free knowledge distillation for OpenMMLab (mmengine/mmpretrain)',
    long_description=open(osp.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    python_requires='>=3.10',
    install_requires=read_requirements('torch.txt') + read_requirements('runtime.txt'),
    extras_require={
        'optional': read_requirements('optional.txt'),
        'tests': read_requirements('tests.txt'),
    },
    license='Apache License 2.0',
    zip_safe=False,
)
