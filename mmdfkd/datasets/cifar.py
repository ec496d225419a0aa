"""CIFAR-10/100 from a local copy only, with an error that says how to provide one."""
from mmpretrain.datasets import CIFAR10, CIFAR100

from mmdfkd.registry import DATASETS


class LocalCIFARMixin:
    """Never downloads (mmdfkd runs offline); a missing or incomplete copy is refused with
    the folder the files must be in and the override that points every split at a copy,
    instead of mmpretrain's advice to set ``download=True``."""

    def __init__(self, *args, download: bool = False, **kwargs) -> None:
        # ``download`` is taken (mmpretrain configs set it) and ignored; every other key
        # goes to the mmpretrain dataset alone, so the config check knows the keys it takes.
        super().__init__(*args, download=False, **kwargs)

    def load_data_list(self) -> list[dict]:
        """The split's samples, or a ``FileNotFoundError`` saying where to unpack the archive."""
        if not self._check_integrity():
            root = self.data_prefix['root']
            raise FileNotFoundError(
                f"{self.__class__.__name__[len('Local'):]} not found (or incomplete) in "
                f"'{root}': it needs the folder {self.base_folder}/ that the python version "
                f'of the archive ({self.filename}, from {self.url}) unpacks to. mmdfkd never '
                'downloads data: unpack it there, or point every split at your copy with '
                '`--cfg-options data_root=DIR`.')
        return super().load_data_list()


@DATASETS.register_module()
class LocalCIFAR10(LocalCIFARMixin, CIFAR10):
    """mmpretrain's ``CIFAR10`` read from a local copy only."""


@DATASETS.register_module()
class LocalCIFAR100(LocalCIFARMixin, CIFAR100):
    """mmpretrain's ``CIFAR100`` read from a local copy only."""
