#!/usr/bin/env bash
# The GPU plan of BENCHMARKS.md as one script: every step under its own time limit, so that a slow
# step costs its own row and not the rest. Logs and JSON go to $1 (default results/gpu-plan).
#
#   bash benchmarks/gpu_plan.sh [OUTDIR] [SCALE]
#
# SCALE (default 1) divides every profile count: `bash benchmarks/gpu_plan.sh /tmp/plan 1024` is the
# same plan at CPU sizes, to try the script before a GPU is at hand. Runs from a checkout without an
# install (PYTHONPATH=.), with whatever jax / torch the machine has.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR="${1:-results/gpu-plan}"
SCALE="${2:-1}"
mkdir -p "$OUTDIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false # so that peak device memory reflects use
PY="${PYTHON:-python3}"
QUICK=$([ "$SCALE" = 1 ] || echo --quick) # full bench sizes on the GPU only
n() { "$PY" -c "print(max(int(float('$1')) // $SCALE, 1024))"; }

step() { # step NAME SECONDS CMD...: run CMD with a time limit, log to OUTDIR/NAME.log, say how it ended
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    echo "== $name (limit ${limit}s): $*"
    timeout --signal=INT --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUTDIR/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "== $name: rc=$rc in $((SECONDS - t0))s"
}

{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
    "$PY" -c "import jax, jaxlib, numpy; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'numpy', numpy.__version__, jax.devices())"
    "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tail -1
} 2>&1 | tee "$OUTDIR/env.log"

W1_BIG=$(n 2147483648)
# W1 at ~1.1e12 evaluations (2^31 profiles x 2 agents x 258 misreports): the headline rate
step w1-1e12 120 "$PY" -m jaxmech bench --workload W1 --profiles "$W1_BIG" --block-size 262144 \
    --chunk-size 8388608 --repeats 2 --json "$OUTDIR/w1-1e12.json"
# W1-W5 at full sizes, float32, PyTorch eager on the same device as the baseline
step bench-f32 180 "$PY" -m jaxmech bench $QUICK --repeats 2 --workload W1 --workload W2 --workload W3 \
    --workload W4 --workload W5 --json "$OUTDIR/bench-f32.json"
# design on the device, unchanged (issue 21): W6 (jm.design from cold starts, its gap; the LP rows where scipy and
# mechaudit are installed) and a randomized design config end to end (search, repair, polish, audit, LP reference)
step design-w6 240 "$PY" -m jaxmech bench --workload W6 $QUICK --json "$OUTDIR/design-w6.json"
step design-run 240 "$PY" -m jaxmech run configs/design_trade_randomized_a03.toml --out "$OUTDIR/design-run" \
    --overwrite
# flat device memory: the same peak at 1e7, 1e9 and 1e10 profiles
step memory 120 "$PY" benchmarks/scale.py memory --profiles "$(n 1e7)" "$(n 1e9)" "$(n 1e10)" \
    --block-size 262144 --chunk-size 8388608
step bench-f64 90 "$PY" -m jaxmech bench $QUICK --float64 --repeats 1 --no-torch --workload W1 --workload W2 \
    --workload W3 --json "$OUTDIR/bench-f64.json"
date -u +%FT%TZ | tee -a "$OUTDIR/env.log"
