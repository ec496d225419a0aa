"""Export the student of a data-free checkpoint (any method, DIP-KD included) as a plain
mmpretrain model.

Writes ``OUT_DIR/student.pth`` (``state_dict`` of the student ``ImageClassifier`` only, no
teacher, no synthesizer) and ``OUT_DIR/student_config.py``, a plain mmpretrain config that
``mmpretrain``'s own tools (and ``tools/test.py`` here) can test:

    python tools/export_student.py CONFIG CHECKPOINT OUT_DIR [--onnx [--shape C H W]]

``--onnx`` also writes ``OUT_DIR/student.onnx`` (normalised images in, logits out, any batch
size) and checks it with onnxruntime against the torch student.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config  # noqa: E402

from mmdfkd.apis.cli_types import ConfigOptionsAction, positive_int  # noqa: E402
from mmdfkd.apis.export import export_student, export_student_onnx  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description='Export a student-only checkpoint')
    parser.add_argument('config', help='the data-free config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint saved by the data-free run')
    parser.add_argument('out_dir', help='folder to write student.pth and student_config.py')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help='config overrides the run was started with, as for '
                             'tools/train.py (e.g. a changed student or test data_root)')
    parser.add_argument('--onnx', action='store_true',
                        help='also write student.onnx (images in, logits out, any batch size), '
                             'checked with onnxruntime')
    parser.add_argument('--shape', nargs=3, type=positive_int, metavar=('C', 'H', 'W'),
                        help='input size of the ONNX model (default: the size the config '
                             'synthesises, model.synthesizer.image_shape)')
    args = parser.parse_args()
    if args.shape and not args.onnx:
        parser.error('--shape is the input size of the ONNX model: give it with --onnx')
    ckpt, cfg = export_student(args.config, args.checkpoint, args.out_dir, args.cfg_options)
    if args.onnx:
        onnx_path = osp.join(args.out_dir, 'student.onnx')
        diff = export_student_onnx(args.config, ckpt, onnx_path, args.cfg_options, args.shape)
        print(f'student ONNX model: {onnx_path} (onnxruntime logits within {diff:.1e} of '
              'the torch student)')
    if Config.fromfile(cfg).get('test_dataloader') is None:
        # A run without a test split (no data where it ran) exports the model alone.
        follow_up = (f'{args.config} has no test_dataloader/test_evaluator, so the exported '
                     'config has none either: add them to test it with tools/test.py')
    else:
        follow_up = f'test it on the real test split: python tools/test.py {cfg} {ckpt}'
    print(f'student checkpoint: {ckpt}\nstudent config: {cfg}\n{follow_up}')


if __name__ == '__main__':
    main()
