"""Print a config as tools/train.py will run it (mirrors mmpretrain's tools/misc/print_config.py).

    python tools/misc/print_config.py CONFIG [--cfg-options teacher_ckpt=PATH data_root=DIR ...]

The overrides are applied the way the training tool applies them: ``teacher_ckpt`` reaches
the teacher (``model.teacher_ckpt`` or ``model.teacher.checkpoint``), ``data_root`` every
dataloader, and every key under ``model`` / ``custom_hooks`` is checked against the class it
configures, so a misspelt key is reported here too. A classifier named by its config file
(``cfg_path``) is printed as well, as the model it stands for.
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


from mmengine.config import Config  # noqa: E402

from mmdfkd.apis import load_config  # noqa: E402
from mmdfkd.apis.config import check_teacher_normalisation  # noqa: E402
from mmdfkd.apis.cli_types import ConfigOptionsAction  # noqa: E402
from mmdfkd.apis.config_keys import check_runner_config_keys  # noqa: E402
from mmdfkd.engine.runner.data_free_runner import propagate_teacher_ckpt  # noqa: E402
from mmdfkd.utils import find_model_references, resolve_model_reference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file path')
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction,
                        help='config overrides, as for tools/train.py')
    args = parser.parse_args()
    cfg = load_config(args.config, cfg_options=args.cfg_options)
    propagate_teacher_ckpt(cfg)
    check_runner_config_keys(cfg)
    check_teacher_normalisation(cfg)
    print(cfg.pretty_text)
    for path, reference in find_model_references(cfg.get('model')):
        resolved = Config(dict(model=resolve_model_reference(reference, path))).pretty_text
        print(f"# {path}: cfg_path='{reference['cfg_path']}' (with the keys beside it) "
              'stands for')
        print('\n'.join(f'# {line}' for line in resolved.splitlines()))


if __name__ == '__main__':
    main()
