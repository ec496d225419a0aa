"""Fashion-MNIST read straight from gzip or raw IDX files (Debian's ``dataset-fashion-mnist``)."""
import gzip
import os.path as osp

import numpy as np
from mmpretrain.datasets import FashionMNIST

from mmdfkd.registry import DATASETS

DEBIAN_FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist'
INSTALL_HINT = ('Install it with `apt-get install dataset-fashion-mnist` (files land in '
                f'{DEBIAN_FASHION_MNIST_ROOT}) or set `data_root` to a folder holding '
                '{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].')

_IDX_DTYPES = {8: np.uint8, 9: np.int8, 11: '>i2', 12: '>i4', 13: '>f4', 14: '>f8'}


def read_idx(path: str) -> np.ndarray:
    """Read an IDX (LeCun's MNIST format) file, gzip-compressed or not."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f'{path} is not an IDX file (bad magic number {data[:4].hex()})')
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim))
    array = np.frombuffer(data, dtype=_IDX_DTYPES[data[2]], offset=4 + 4 * ndim)
    return array.reshape(shape)


@DATASETS.register_module()
class FashionMNISTIdx(FashionMNIST):
    """Fashion-MNIST that reads the IDX files whether or not they are gzip-compressed.

    mmpretrain's :class:`FashionMNIST` only accepts uncompressed files and otherwise tries to
    download them; this class never downloads and explains how to install the data instead.

    Args:
        data_root (str): Folder with the four IDX files. Defaults to Debian's install path.
        split (str): ``'train'`` (used only to train teachers) or ``'test'`` (used only to
            evaluate).
        test_mode (bool, optional): mmengine's test mode; by default that of the split.
        **kwargs: Passed to :class:`mmpretrain.datasets.FashionMNIST` (and only there, so the
            config check knows the keys it takes).
    """

    def __init__(self, data_root: str = DEBIAN_FASHION_MNIST_ROOT, split: str = 'train',
                 test_mode: bool | None = None, **kwargs) -> None:
        super().__init__(data_root=data_root, split=split, download=False,
                         test_mode=split == 'test' if test_mode is None else test_mode,
                         **kwargs)

    def _find(self, name: str) -> str | None:
        root = self.data_prefix['root']
        for candidate in (name, name + '.gz'):
            path = osp.join(root, candidate)
            if osp.isfile(path):
                return path
        return None

    def _check_exists(self) -> bool:
        names = [n[:-3] for n, _ in self.train_list + self.test_list]
        return all(self._find(n) is not None for n in names)

    def load_data_list(self) -> list[dict]:
        """The split's images and labels from its IDX files, gzip-compressed or not."""
        file_list = self.test_list if self.split == 'test' else self.train_list
        image_name, label_name = (n[:-3] for n, _ in file_list)
        image_path, label_path = self._find(image_name), self._find(label_name)
        if image_path is None or label_path is None:
            raise FileNotFoundError(
                f'Fashion-MNIST {self.split} split not found in '
                f"'{self.data_prefix['root']}' (looked for {image_name}[.gz] and "
                f'{label_name}[.gz]). {INSTALL_HINT}')
        images = read_idx(image_path)
        labels = read_idx(label_path).astype(np.int64)
        return [{'img': img, 'gt_label': np.array(lbl, dtype=np.int64)}
                for img, lbl in zip(images, labels)]
