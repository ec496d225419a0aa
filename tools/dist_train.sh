#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NUM_PROCESSES [train.py args...]
# Uses NCCL on GPUs and gloo on CPU-only machines (tools/train.py picks the backend).
set -euo pipefail
CONFIG=$1
NPROC=$2
shift 2
exec bash "$(dirname "$0")/dist_run.sh" train.py "$NPROC" "$CONFIG" --launcher pytorch "$@"
