"""Train the small pixel-space DDPM that DiffDFKD's Fashion-MNIST config samples from.

    python tools/train_ddpm.py --out work_dirs/ddpm_digits [--steps 1500]

It learns scikit-learn's bundled 8x8 handwritten digits (upsampled to 32x32), deliberately
NOT the teacher's data: a domain-gap prior the teacher's guidance has to steer towards
clothing, as Stable Diffusion is a domain-gap prior for CIFAR.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdfkd.apis.cli_types import positive_int  # noqa: E402
from mmdfkd.apis.ddpm import digits_images, train_ddpm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/ddpm_digits',
                        help="folder for the diffusers pipeline (the DiffDFKD Fashion-MNIST "
                             "config's pipeline_path)")
    parser.add_argument('--steps', type=positive_int, default=1500, help='training steps')
    parser.add_argument('--batch-size', type=positive_int, default=32, help='images per step')
    parser.add_argument('--width', type=positive_int, default=16, help='UNet base channels')
    parser.add_argument('--size', type=positive_int, default=32,
                        help='image size in pixels (the teacher input size)')
    args = parser.parse_args()
    train_ddpm(args.out, digits_images(args.size), steps=args.steps,
               batch_size=args.batch_size, width=args.width)
    print(f'saved the pipeline to {args.out}')


if __name__ == '__main__':
    main()
