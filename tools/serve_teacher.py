"""Serve a trained mmpretrain classifier as a top-1 (or probability) HTTP endpoint.

    python tools/serve_teacher.py configs/teachers/lenet5_fmnist.py \\
        work_dirs/teachers/lenet5_fmnist/epoch_15.pth --port 8000 [--output probs]

A data-free run then reaches it with
``model.teacher=dict(type='HardLabelTeacher', num_classes=10, url='http://127.0.0.1:8000')``.
"""
import argparse
import os.path as osp
import socket
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import uvicorn  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

import mmdfkd  # noqa: E402,F401
from mmdfkd.apis.serve import build_teacher_app  # noqa: E402
from mmdfkd.models.teachers import ClassifierSource  # noqa: E402
from mmdfkd.utils import load_referenced_config, resolve_model_reference  # noqa: E402


def port_number(text: str) -> int:
    """argparse type of ``--port``: a TCP port, 1-65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f'takes a TCP port in 1-65535; got {text!r}')
    return port


def main() -> None:
    parser = argparse.ArgumentParser(description='Serve a classifier as a teacher endpoint')
    parser.add_argument('config', help='the classifier config (e.g. a configs/teachers file, or '
                        "'mmpretrain::resnet/resnet18_8xb16_cifar10.py')")
    parser.add_argument('checkpoint', help='its trained weights')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: this machine only; 0.0.0.0 '
                             'serves other machines too)')
    parser.add_argument('--port', type=port_number, default=8000,
                        help='port to listen on; the client config takes '
                             'model.teacher.url=http://HOST:PORT')
    parser.add_argument('--output', choices=['top1', 'probs'], default='top1',
                        help='answer with the top-1 label (default) or probabilities')
    parser.add_argument('--device', default='cpu',
                        help="where the model runs (e.g. 'cuda:0')")
    args = parser.parse_args()
    # Checked before the model loads, and so that "serving ..." is never printed for a port
    # uvicorn then cannot bind.
    with socket.socket() as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a server just stopped is free to use
        # (a server restarted on its old port must come up).
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((args.host, args.port))
        except OSError as e:
            raise SystemExit(f'cannot serve on {args.host}:{args.port} ({e.strerror}): another '
                             'server (a teacher served before?) may hold it; stop it or pick '
                             'another --port') from None
    # A file, or a model-zoo config inside mmpretrain ('mmpretrain::resnet/...py').
    cfg = load_referenced_config(args.config, 'config')
    init_default_scope(cfg.get('default_scope', 'mmdfkd'))
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') else dict(cfg.model)
    if 'teacher' in model_cfg or 'student' in model_cfg:
        raise SystemExit(f"{args.config} is a data-free config (model.type="
                         f"{model_cfg.get('type')}): serve the classifier config the teacher "
                         'was trained with, e.g. configs/teachers/lenet5_fmnist.py, and its '
                         'epoch_N.pth')
    # A reference (cfg_path=...) declares its classes in the config it names; VGG declares
    # them on its backbone.
    resolved = resolve_model_reference(model_cfg, 'model')
    num_classes = ((resolved.get('head') or {}).get('num_classes')
                   or (resolved.get('backbone') or {}).get('num_classes'))
    if num_classes is None and resolved.get('type') != 'TorchClassifier':
        raise SystemExit(f'{args.config}: neither model.head.num_classes nor '
                         'model.backbone.num_classes is set')
    if not osp.isfile(args.checkpoint):
        # (the teacher loader's own hint is for data-free configs: --cfg-options teacher_ckpt)
        raise SystemExit(f'{args.checkpoint}: no such checkpoint file; give the epoch_N.pth '
                         f'that training {args.config} wrote (python tools/train.py '
                         f'{args.config} writes one per epoch into its work dir)')
    source = ClassifierSource(model_cfg, args.checkpoint, output=args.output,
                              device=args.device)
    # A plain PyTorch classifier (TorchClassifier) declares its classes once built: its
    # final linear layer's out_features.
    num_classes = num_classes or source.num_classes
    if num_classes is None:
        raise SystemExit(f'{args.config}: the model declares no class count; set '
                         'model.feature_layer to its final nn.Linear')
    app = build_teacher_app(source, args.output, num_classes)
    print(f'serving {args.checkpoint} ({args.output}) on http://{args.host}:{args.port}',
          flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level='warning')


if __name__ == '__main__':
    main()
