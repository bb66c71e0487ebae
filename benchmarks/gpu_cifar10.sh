#!/usr/bin/env bash
# CIFAR-10 test set (10,000 images) on one GPU in under 8 minutes, in one command:
# training images/s of our pipeline against the CC-style per-image PIL pipeline with 16
# DataLoader workers (same method, backbone, batch and bf16 precision), peak GPU memory,
# and ACC/NMI over time for one method (see benchmarks/gpu_cifar10.py for the phases).
#
#   bash benchmarks/gpu_cifar10.sh --prepare   # here: CIFAR-10 test into .gpudata/ (30 MB)
#   bash benchmarks/gpu_cifar10.sh             # on the GPU machine, .gpudata/ carried along
#   TINY=1 bash benchmarks/gpu_cifar10.sh      # the CPU check, about a minute
#
# The GPU machine has no package index: it needs torch, lightning and the other
# dependencies installed, and this script adds only the package itself
# (pip install --no-deps --no-build-isolation -e .), or runs it from the source tree
# when that install fails. --prepare reads ../shared/data (or $CONTRACLUST_SHARED_DATA).
#
# Environment: OUT (folder of gpu_cifar10.json and gpu_cifar10.log; default
# runs/gpu-cifar10-<time>), GPU_DATA (the data root; .gpudata), METHOD (clc), TINY,
# PYTHON (the interpreter; default .venv/bin/python, else the first of python3 and
# python that imports torch), MAX_S (470: the whole command is stopped after this many
# seconds; the JSON keeps what was done).
# Arguments after the options above go to gpu_cifar10.py (e.g. --train-budget-s 200).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
GPU_CIFAR10_START=$(date +%s.%N)
export GPU_CIFAR10_START
DATA=${GPU_DATA:-$REPO/.gpudata}

if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x .venv/bin/python ]; then
    PY=$REPO/.venv/bin/python
else
    PY=
    for candidate in python3 python; do  # the first one on PATH that has torch
        if command -v "$candidate" >/dev/null && "$candidate" -c "import torch" 2>/dev/null; then
            PY=$(command -v "$candidate")
            break
        fi
    done
    if [ -z "$PY" ]; then
        echo "error: no python3 or python on PATH can import torch; set PYTHON" >&2
        exit 2
    fi
fi

# From / so that the source tree in the working directory does not count as installed.
if ! (cd / && "$PY" -c "import contraclust" 2>/dev/null); then
    echo "+ $PY -m pip install --no-deps --no-build-isolation --no-index -e ." >&2
    if ! "$PY" -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation \
        --no-index -e . >&2; then
        echo "pip could not install the package; running it from the source tree" >&2
        export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
    fi
fi

if [ "${1:-}" = --prepare ]; then
    exec "$PY" benchmarks/gpu_cifar10.py --prepare --data "$DATA"
fi

OUT=${OUT:-$REPO/runs/gpu-cifar10-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
ARGS=(--out "$OUT" --data "$DATA" --method "${METHOD:-clc}")
if [ "${TINY:-0}" = 1 ]; then ARGS+=(--tiny); fi

{
    date -u +"started %Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 ||
        echo "no nvidia-smi"
} >"$OUT/gpu_cifar10.log"
set +e
timeout --signal=TERM --kill-after=10 "${MAX_S:-470}" \
    "$PY" benchmarks/gpu_cifar10.py "${ARGS[@]}" "$@" 2>&1 | tee -a "$OUT/gpu_cifar10.log"
STATUS=${PIPESTATUS[0]}
set -e
if [ "$STATUS" -eq 124 ] || [ "$STATUS" -eq 137 ]; then
    echo "error: stopped after ${MAX_S:-470} s; $OUT/gpu_cifar10.json has what was done" >&2
fi
exit "$STATUS"
