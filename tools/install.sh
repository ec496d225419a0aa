#!/usr/bin/env bash
# Install everything mmdfkd needs on a fresh Debian machine (idempotent; run as root).
#   - Debian's dataset-fashion-mnist (the only data the fmnist configs read)
#   - torch + torchvision from PyPI, bypassing the machine's pip config that would pick a
#     CPU-only torch wheel incompatible with torchvision
#   - mmengine / mmcv-lite / mmpretrain / diffusers and mmdfkd itself (editable)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}

if [ ! -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ]; then
    echo "[install] apt: dataset-fashion-mnist"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
fi

export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_DISABLE_PIP_VERSION_CHECK=1
pip_install() { "$PY" -m pip install -q --root-user-action=ignore "$@"; }

if ! "$PY" -c "import torchvision" >/dev/null 2>&1; then
    echo "[install] pip: torch + torchvision (PyPI build)"
    if "$PY" -c "import torch" >/dev/null 2>&1; then
        # A torch that cannot load torchvision (e.g. the preinstalled +cpu wheel) is replaced.
        pip_install --force-reinstall --no-deps -r "$ROOT/requirements/torch.txt"
    fi
    pip_install -r "$ROOT/requirements/torch.txt"
fi

if ! "$PY" -c "import mmdfkd, mmpretrain, diffusers, transformers, fastapi, httpx, uvicorn, sklearn, onnx, onnxruntime, pytest, xdist, ruff" >/dev/null 2>&1; then
    echo "[install] pip: OpenMMLab stack, optional and test requirements, mmdfkd"
    pip_install -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/optional.txt" \
        -r "$ROOT/requirements/tests.txt"
    pip_install --no-build-isolation --no-deps -e "$ROOT"
fi
"$PY" -c "import mmdfkd, torchvision; print('[install] ok: mmdfkd', mmdfkd.__version__, \
'torch', __import__('torch').__version__)" 2>&1 | grep -v -i warn
