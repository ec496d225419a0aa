"""Export synthetic images as a class-per-folder image dataset."""
import os
import os.path as osp
import re
import shutil

import numpy as np
import torch
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from PIL import Image

from mmdfkd.apis.config_keys import check_config_keys
from mmdfkd.registry import MODELS


def _folder_names(classes: list[str]) -> list[str]:
    # Zero-padded index first: CustomDataset sorts folders, so order == class index.
    width = len(str(len(classes) - 1))
    return [f'{i:0{width}d}_' + re.sub(r'[^A-Za-z0-9_.-]+', '_', name)
            for i, name in enumerate(classes)]


def _split_dataset(dataset: dict | None) -> dict | None:
    """The dataset dict that holds the samples: wrappers (``RepeatDataset``,
    ``ClassBalancedDataset``: ``dataset``; ``ConcatDataset``: ``datasets``) are unwrapped."""
    while isinstance(dataset, dict):
        if isinstance(dataset.get('dataset'), dict):
            dataset = dataset['dataset']
        elif dataset.get('datasets'):
            dataset = dataset['datasets'][0]
        else:
            return dataset
    return None


def evaluation_class_names(cfg: Config, num_classes: int) -> tuple[list[str], str | None]:
    """Class names for ``num_classes`` classes from the config's evaluation split.

    Read from the test split's dataset (else the validation split's): its
    ``metainfo['classes']`` (a list, or a file with one name per line, as mmpretrain takes
    it), else its class's ``METAINFO``. A data-free config often has no split (no data on the
    machine), and a teacher of another dataset than the split's has another class count, so
    the names then fall back to the class indices.

    Returns:
        ``(names, note)``; ``note`` says why the indices were used (``None`` when the names
        were found).
    """
    from mmengine import list_from_file

    from mmdfkd.registry import DATASETS
    indices = [str(i) for i in range(num_classes)]
    for key in ('test_dataloader', 'val_dataloader'):
        dataset = _split_dataset((cfg.get(key) or {}).get('dataset'))
        if dataset is None:
            continue
        names = (dataset.get('metainfo') or {}).get('classes')
        if isinstance(names, str):
            names = list_from_file(names)
        if names is None:
            dataset_cls = DATASETS.get(dataset.get('type', ''))
            names = getattr(dataset_cls, 'METAINFO', {}).get('classes')
        if not names:
            return indices, (f'{key}.dataset ({dataset.get("type")}) names no classes; '
                             'folders are named by class index')
        if len(names) != num_classes:
            return indices, (f'{key}.dataset ({dataset.get("type")}) has {len(names)} classes '
                             f'but the teacher {num_classes}; folders are named by class index')
        return list(names), None
    return indices, ('the config has no test_dataloader or val_dataloader to read class names '
                     'from; folders are named by class index')


def _to_uint8(images: torch.Tensor, mean: torch.Tensor | None,
              std: torch.Tensor | None) -> np.ndarray:
    if mean is not None and std is not None:
        images = images * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)
    else:
        lo, hi = images.amin(), images.amax()
        images = (images - lo) / (hi - lo + 1e-8) * 255
    return images.clamp(0, 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def build_from_checkpoint(config: str, checkpoint: str,
                          cfg_options: dict | None = None) -> BaseModel:
    """The data-free model of ``config`` (with ``--cfg-options`` style overrides) with the
    weights (and pool index) of ``checkpoint``."""
    from mmdfkd.engine.runner.checkpoint_loader import (load_run_checkpoint, run_config_hint,
                                                        weights_mismatch)
    state = load_run_checkpoint(checkpoint, 'tools/synthesize.py')
    from mmdfkd.apis.config import merge_cfg_options
    cfg = Config.fromfile(config)
    merge_cfg_options(cfg, cfg_options, config)
    if 'synthesizer' not in cfg.model:
        raise ValueError(f"{config} builds model.type={cfg.model.get('type')}, which has no "
                         'model.synthesizer and so no synthetic images to export: '
                         'tools/synthesize.py needs '
                         f'{run_config_hint(checkpoint, state)}.')
    from mmdfkd.engine.runner.data_free_runner import propagate_teacher_ckpt
    propagate_teacher_ckpt(cfg)
    init_default_scope(cfg.get('default_scope', 'mmdfkd'))
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if 'teacher_ckpt' in model_cfg:
        # A white-box teacher's weights are in the run's checkpoint (black-box ones never are).
        model_cfg['teacher_ckpt'] = checkpoint
    check_config_keys(model_cfg, MODELS, 'model')
    model = MODELS.build(model_cfg)
    run_dir = osp.dirname(osp.abspath(checkpoint))
    model.set_work_dir(run_dir)
    state_dict = state.get('state_dict', state)
    problems = weights_mismatch(model.state_dict(), state_dict)
    if problems:
        raise ValueError(f'{checkpoint} was saved by a run of another config than {config} '
                         f"({'; '.join(problems)}): tools/synthesize.py needs "
                         f'{run_config_hint(checkpoint, state)}.')
    model.load_state_dict(state_dict, strict=True)
    return model.eval()


def _clear_earlier_export(out_dir: str, overwrite: bool) -> None:
    """Make ``out_dir`` hold nothing before an export: CustomDataset reads every sub-folder,
    so images left by an earlier export (other counts, other labels under the same file
    names) would join this one's. ``overwrite`` removes an earlier export; anything else in
    the folder is never deleted."""
    if not osp.isdir(out_dir) or not os.listdir(out_dir):
        if osp.exists(out_dir) and not osp.isdir(out_dir):
            raise NotADirectoryError(f"out_dir '{out_dir}' is a file: give a folder")
        return
    entries = sorted(os.listdir(out_dir))
    foreign = [e for e in entries
               if not (re.match(r'\d+_', e) and osp.isdir(osp.join(out_dir, e))
                       and all(f.endswith('.png') for f in os.listdir(osp.join(out_dir, e))))]
    if foreign:
        raise FileExistsError(
            f"out_dir '{out_dir}' holds other files than an earlier export "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), which "
            "mmpretrain's CustomDataset would read as classes: give an empty or new folder")
    if not overwrite:
        raise FileExistsError(
            f"out_dir '{out_dir}' holds an earlier export ({len(entries)} class folders), whose "
            'images would mix with this one: give a new folder, or --overwrite to replace it')
    for e in entries:
        shutil.rmtree(osp.join(out_dir, e))


def export_image_folder(model: BaseModel, out_dir: str, classes: list[str],
                        num_images: int | None = None, batch_size: int = 256,
                        overwrite: bool = False) -> dict[str, int]:
    """Write PNGs to ``out_dir/<idx>_<class>/``, labelled by the teacher's top-1.

    Pool-based synthesizers export their whole pool (``num_images`` caps it); generator-based
    ones draw ``num_images`` fresh samples. mmpretrain reads the result with
    ``dict(type='CustomDataset', data_root=out_dir)``. ``out_dir`` must be new or empty;
    ``overwrite=True`` replaces an earlier export there (nothing else is deleted).

    Returns:
        Number of images written per class folder.
    """
    if num_images is not None and num_images < 1:
        raise ValueError(f'num_images must be >= 1 (or None for a whole pool), got {num_images}')
    num_classes = getattr(model, 'num_classes', None)
    if num_classes is not None and len(classes) != num_classes:
        raise ValueError(f'{len(classes)} class names for a teacher of {num_classes} classes '
                         '(evaluation_class_names gives names that fit)')
    synthesizer = model.synthesizer
    pool = getattr(synthesizer, 'pool', None)
    if pool is None and not num_images:
        raise ValueError('a generator-based synthesizer draws fresh images: give their number '
                         '(--num-images N)')
    _clear_earlier_export(out_dir, overwrite)
    folders = _folder_names(classes)
    for f in folders:
        os.makedirs(osp.join(out_dir, f), exist_ok=True)
    pre = model.data_preprocessor
    mean = getattr(pre, 'mean', None) if getattr(pre, '_enable_normalize', False) else None
    std = getattr(pre, 'std', None) if mean is not None else None

    def batches():
        if pool is not None:
            yield from pool.iter_batches()
        else:
            done = 0
            while done < num_images:
                images = synthesizer.sample(min(batch_size, num_images - done))
                with torch.no_grad():
                    labels = model.teacher_labels(images)
                done += images.size(0)
                yield images, labels

    counts = dict.fromkeys(folders, 0)
    written = 0
    for images, labels in batches():
        pixels = _to_uint8(images, mean, std)
        for img, label in zip(pixels, labels.tolist()):
            if num_images is not None and written >= num_images:
                return counts
            folder = folders[label]
            img = img[..., 0] if img.shape[-1] == 1 else img
            Image.fromarray(img).save(osp.join(out_dir, folder, f'{written:07d}.png'))
            counts[folder] += 1
            written += 1
    return counts
