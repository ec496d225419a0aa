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

from mmdfkd.apis.ddpm import digits_images, train_ddpm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='work_dirs/ddpm_digits')
    parser.add_argument('--steps', type=int, default=1500)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--width', type=int, default=16, help='UNet base channels')
    parser.add_argument('--size', type=int, default=32)
    args = parser.parse_args()
    train_ddpm(args.out, digits_images(args.size), steps=args.steps,
               batch_size=args.batch_size, width=args.width)
    print(f'saved the pipeline to {args.out}')


if __name__ == '__main__':
    main()
