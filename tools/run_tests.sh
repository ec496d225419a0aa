#!/usr/bin/env bash
# Fresh machine -> installed -> lint -> test suite. .ci/run calls exactly this.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tools/install.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check mmdfkd tools tests configs
"$PY" -m pytest -q tests "$@"
