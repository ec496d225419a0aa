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
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
"${PYTHON:-python3}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$ROOT/tools/test.py" "$CONFIG" "$CHECKPOINT" --launcher pytorch "$@"
