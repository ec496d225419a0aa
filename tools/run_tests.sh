#!/usr/bin/env bash
# Fresh machine -> installed -> lint -> test suite. .ci/run calls exactly this.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash tools/install.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check mmdfkd tools tests configs setup.py
# Two pytest-xdist workers, one thread each (tests/conftest.py): 8-9 minutes on 2 cores where one
# process took 12-14.5 (most tests start subprocesses, whose imports run on one core).
# Arguments after the script's name go to pytest, `-n 0` for one process included.
"$PY" -m pytest -q -n 2 tests "$@"
