#!/usr/bin/env bash
# Distributed evaluation: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCESSES [test.py args...]
# Each process evaluates its share of the test split; mmengine gathers the predictions (the
# sampler's padding is dropped), so metrics and --out dumps equal a one-process run.
# Uses NCCL on GPUs and gloo on CPU-only machines (tools/test.py picks the backend).
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
exec bash "$(dirname "$0")/dist_run.sh" test.py "$NPROC" "$CONFIG" "$CHECKPOINT" \
    --launcher pytorch "$@"
