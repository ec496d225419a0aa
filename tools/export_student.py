"""Export the student of a data-free checkpoint (any method, DIP-KD included) as a plain
mmpretrain model.

Writes ``OUT_DIR/student.pth`` (``state_dict`` of the student ``ImageClassifier`` only, no
teacher, no synthesizer) and ``OUT_DIR/student_config.py``, a plain mmpretrain config that
``mmpretrain``'s own tools (and ``tools/test.py`` here) can test:

    python tools/export_student.py CONFIG CHECKPOINT OUT_DIR
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdfkd.apis.export import export_student  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description='Export a student-only checkpoint')
    parser.add_argument('config', help='the data-free config the checkpoint was trained with')
    parser.add_argument('checkpoint', help='checkpoint saved by the data-free run')
    parser.add_argument('out_dir', help='folder to write student.pth and student_config.py')
    args = parser.parse_args()
    ckpt, cfg = export_student(args.config, args.checkpoint, args.out_dir)
    print(f'student checkpoint: {ckpt}\nstudent config: {cfg}\n'
          f'test it on the real test split: python tools/test.py {cfg} {ckpt}')


if __name__ == '__main__':
    main()
