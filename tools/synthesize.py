"""Export a run's synthetic images as an image folder mmpretrain's CustomDataset reads.

    python tools/synthesize.py CONFIG CHECKPOINT OUT_DIR [--num-images N] [--overwrite]

Pool-based methods (DeepInversion, DIP-KD, ...) export their synthetic data pool;
generator-based ones (DAFL, DFAD, ZSKT) sample N new images. Each image goes to
OUT_DIR/<idx>_<class>/ by the teacher's top-1 label (for a black-box teacher, the label it
answered when the image was bought: exporting asks it nothing).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402

import mmdfkd  # noqa: E402,F401
from mmdfkd.apis.cli_types import ConfigOptionsAction, positive_int  # noqa: E402
from mmdfkd.apis.config import merge_cfg_options  # noqa: E402
from mmdfkd.apis.synthesize import (build_from_checkpoint, evaluation_class_names,  # noqa: E402
                                    export_image_folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='the data-free config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint saved by the data-free run (its pool or '
                        'generator is what is exported)')
    parser.add_argument('out_dir', help='folder to write the images to, one sub-folder per '
                        'class (mmpretrain CustomDataset layout)')
    parser.add_argument('--num-images', type=positive_int, default=None,
                        help='cap on the images written (pool methods: default the whole '
                             'pool; generator methods need it)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an earlier export in OUT_DIR (by default OUT_DIR must be '
                             'new or empty: images of two exports would mix)')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help='config overrides, as for tools/train.py')
    args = parser.parse_args()
    model = build_from_checkpoint(args.config, args.checkpoint, args.cfg_options)
    cfg = Config.fromfile(args.config)
    merge_cfg_options(cfg, args.cfg_options, args.config)
    classes, note = evaluation_class_names(cfg, model.num_classes)
    if note:
        print(f'note: {note}')
    try:
        counts = export_image_folder(model, args.out_dir, classes, args.num_images,
                                     overwrite=args.overwrite)
    except (FileExistsError, NotADirectoryError) as err:
        parser.error(str(err))
    print(f'wrote {sum(counts.values())} images to {args.out_dir}: {counts}')


if __name__ == '__main__':
    main()
