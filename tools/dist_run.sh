#!/usr/bin/env bash
# Run a tools/ script in NUM_PROCESSES processes (torch.distributed.run), the launcher shared
# by dist_train.sh and dist_test.sh: tools/dist_run.sh SCRIPT NUM_PROCESSES [script args...]
# Environment: NNODES, NODE_RANK, MASTER_ADDR, PORT (defaults for one machine), PYTHON.
set -euo pipefail
SCRIPT=$1
NPROC=$2
shift 2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# exec: the launcher takes this shell's place, so a SIGTERM or SIGINT sent to the script
# (a scheduler pre-empting the job, kill PID) reaches it and it passes the signal on to every
# process, which save a checkpoint and stop; a shell left in between would hold the signal
# until training ended by itself.
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
exec "${PYTHON:-python3}" -m torch.distributed.run \
    --nnodes="$NNODES" --node_rank="$NODE_RANK" --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$NPROC" --master_port="$PORT" \
    "$ROOT/tools/$SCRIPT" "$@"
