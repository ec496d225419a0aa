"""Small data transforms that mmpretrain/mmcv lack."""
import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmdfkd.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CenterPad(BaseTransform):
    """Pad ``results['img']`` evenly on all sides to ``size`` x ``size``.

    LeNet-5 takes 32x32 inputs; Fashion-MNIST images are 28x28. mmcv's ``Pad`` pads only the
    bottom/right, which would shift every object off centre.

    Args:
        size (int): Output height and width.
        pad_val (int): Value of the padded pixels.
    """

    def __init__(self, size: int, pad_val: int = 0) -> None:
        self.size = size
        self.pad_val = pad_val

    def transform(self, results: dict) -> dict:
        """Pad ``results['img']`` to ``size`` x ``size``, centred, and update ``img_shape``."""
        img = results['img']
        h, w = img.shape[:2]
        if h > self.size or w > self.size:
            raise ValueError(f'CenterPad(size={self.size}) got a larger image {h}x{w}; '
                             'use a Resize/crop transform before it.')
        top, left = (self.size - h) // 2, (self.size - w) // 2
        pad = [(top, self.size - h - top), (left, self.size - w - left)]
        pad += [(0, 0)] * (img.ndim - 2)
        results['img'] = np.pad(img, pad, constant_values=self.pad_val)
        results['img_shape'] = results['img'].shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(size={self.size}, pad_val={self.pad_val})'


@TRANSFORMS.register_module()
class ToGrayscale(BaseTransform):
    """Make ``results['img']`` single-channel ``(H, W)``: a BGR image (as mmcv loads every
    file by default) is converted with ``mmcv.bgr2gray``, a one-channel image squeezed, a
    ``(H, W)`` one left alone.

    Greyscale models (Fashion-MNIST's LeNets) need it in their test pipeline so that
    mmpretrain's ``ImageClassificationInferencer``, which loads images in colour, can run
    them on image files (e.g. the PNGs ``tools/synthesize.py`` writes).
    """

    def transform(self, results: dict) -> dict:
        """Turn ``results['img']`` into a single-channel ``(H, W)`` image."""
        img = results['img']
        if img.ndim == 3 and img.shape[2] == 3:
            img = mmcv.bgr2gray(img)
        elif img.ndim == 3 and img.shape[2] == 1:
            img = img[..., 0]
        elif img.ndim != 2:
            raise ValueError(f'ToGrayscale takes (H, W), (H, W, 1) or BGR (H, W, 3) images, '
                             f'got shape {img.shape}')
        results['img'] = img
        return results
