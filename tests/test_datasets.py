import gzip
import os.path as osp

import numpy as np
import pytest

from mmdfkd.datasets import CenterPad, FashionMNISTIdx
from mmdfkd.datasets.fashion_mnist import read_idx

from .conftest import FMNIST_ROOT, needs_fmnist


def _write_idx(path, array: np.ndarray, compress: bool):
    header = bytes([0, 0, 8, array.ndim]) + b''.join(
        int(d).to_bytes(4, 'big') for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, 'wb') as f:
        f.write(data)


@pytest.mark.parametrize('compress', [True, False])
def test_reads_gzip_and_raw_idx(tmp_path, compress):
    suffix = '.gz' if compress else ''
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    labels = np.array([3, 1, 4])
    for split in ('train', 't10k'):
        _write_idx(str(tmp_path / f'{split}-images-idx3-ubyte{suffix}'), images, compress)
        _write_idx(str(tmp_path / f'{split}-labels-idx1-ubyte{suffix}'), labels, compress)
    ds = FashionMNISTIdx(data_root=str(tmp_path), split='test')
    assert len(ds) == 3
    assert ds[1]['gt_label'] == 1
    np.testing.assert_array_equal(ds[2]['img'], images[2])
    assert ds.metainfo['classes'][0] == 'T-shirt/top'


def test_missing_files_give_install_hint(tmp_path):
    with pytest.raises((FileNotFoundError, RuntimeError), match='apt-get install'):
        FashionMNISTIdx(data_root=str(tmp_path), split='test')


def test_read_idx_rejects_other_files(tmp_path):
    path = tmp_path / 'x'
    path.write_bytes(b'PK\x03\x04 not idx')
    with pytest.raises(ValueError, match='IDX'):
        read_idx(str(path))


@needs_fmnist
def test_debian_fashion_mnist_splits():
    test = FashionMNISTIdx(data_root=FMNIST_ROOT, split='test', lazy_init=False)
    assert len(test) == 10000
    labels = np.array([test.get_data_info(i)['gt_label'] for i in range(len(test))])
    assert np.bincount(labels).tolist() == [1000] * 10
    assert osp.isfile(osp.join(FMNIST_ROOT, 'train-images-idx3-ubyte.gz'))


def test_center_pad_keeps_object_centred():
    img = np.ones((28, 28), dtype=np.uint8)
    out = CenterPad(32).transform({'img': img})['img']
    assert out.shape == (32, 32)
    assert out[2:30, 2:30].all() and out[:2].sum() == 0 and out[:, 30:].sum() == 0
    with pytest.raises(ValueError):
        CenterPad(16).transform({'img': img})


@pytest.mark.parametrize('config,dataset', [('teachers/resnet34_cifar10.py', 'LocalCIFAR10'),
                                            ('teachers/wrn40_2_cifar100.py', 'LocalCIFAR100')])
def test_cifar_without_a_local_copy_says_where_it_goes(config, dataset, tmp_path):
    """mmpretrain's error advised `download=True`; mmdfkd runs offline, so the error names
    the folder the archive unpacks to and the one override that moves every split; that
    override used to change nothing (the configs' `data_root` is substituted when read)."""
    from mmdfkd.apis import load_config
    from mmdfkd.registry import DATASETS
    from .conftest import config_path
    cfg = load_config(config_path(*config.split('/')),
                      cfg_options={'data_root': str(tmp_path),
                                   'test_dataloader.dataset.data_root': 'elsewhere'})
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path)
    assert cfg.val_dataloader.dataset.data_root == str(tmp_path)
    assert cfg.test_dataloader.dataset.data_root == 'elsewhere'  # its own override wins
    assert cfg.train_dataloader.dataset.type == dataset
    folder = 'cifar-10-batches-py' if dataset == 'LocalCIFAR10' else 'cifar-100-python'
    with pytest.raises(FileNotFoundError, match=rf"not found .* in '{tmp_path}/?': it needs "
                                                rf'the folder {folder}/ .*never downloads.*'
                                                r'--cfg-options data_root=DIR'):
        DATASETS.build(dict(cfg.train_dataloader.dataset, download=True))
