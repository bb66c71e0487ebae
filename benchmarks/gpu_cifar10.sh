#!/usr/bin/env bash
# CIFAR-10 (train + test, 60,000 images), ResNet-18 (CIFAR stem), one GPU, a wall-clock
# budget of 25 minutes; NMI/ACC every few epochs with the time since launch.
#
# The GPU machine has no internet: the data and, when needed, the wheels travel with it.
#
#   CONTRACLUST_DATA=/data benchmarks/gpu_cifar10.sh            # the GPU run
#   TINY=1 benchmarks/gpu_cifar10.sh                            # end to end on CPU, ~1 min
#   DRY_RUN=1 benchmarks/gpu_cifar10.sh                         # print the commands only
#
# Data: $CONTRACLUST_DATA/cifar10/ holding the official python batches
# (cifar-10-batches-py/data_batch_1..5, test_batch) or the binary ones
# (cifar-10-batches-bin/data_batch_1..5.bin, test_batch.bin); copy them from a machine
# that has them (`contraclust datasets download cifar10 --data-root DIR` there).
# Wheels: when .venv is missing, set WHEELS to a folder made on a connected machine of
# the same Python version and platform with
#   pip download --dest wheels torch --index-url https://download.pytorch.org/whl/cu124
#   pip download --dest wheels /path/to/contraclust      # its dependencies
# and the script installs from it with pip --no-index (nothing is fetched).
#
# Settings (environment): METHOD (clc; concurl also has a cifar10 preset), EPOCHS (80),
# EVAL_EVERY (5), BUDGET_MIN (25), BATCH (the preset's), OUT (runs/gpu-cifar10-<time>),
# PYTHON_BIN (python3, to create .venv). The run stops at the budget (SIGINT, then
# SIGKILL a minute later) and keeps what it logged; the summary is written to
# $OUT/gpu_cifar10.json and printed.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
START=$(date +%s.%N)
METHOD=${METHOD:-clc}
EVAL_EVERY=${EVAL_EVERY:-5}
OUT=${OUT:-runs/gpu-cifar10-$(date -u +%Y%m%dT%H%M%SZ)}
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
DRY_RUN=${DRY_RUN:-0}
TINY=${TINY:-0}

run() {  # print a command, and run it unless DRY_RUN=1
    echo "+ $*" >&2
    if [ "$DRY_RUN" != 1 ]; then "$@"; fi
}

if [ ! -x "$PY" ]; then
    if [ -z "${WHEELS:-}" ]; then
        echo "error: $VENV is missing; run 'make setup' or set WHEELS to a wheel folder" >&2
        exit 2
    fi
    run "${PYTHON_BIN:-python3}" -m venv "$VENV"
    run "$PY" -m pip install --no-index --find-links "$WHEELS" torch
    run "$PY" -m pip install --no-index --find-links "$WHEELS" -e .
fi

if [ "$TINY" = 1 ]; then
    # CPU, a 512-image subset of the CIFAR-10 test batch in ../shared/data, one epoch,
    # the small CNN: checks the whole script, not the GPU figure.
    DEVICE=cpu
    EPOCHS=${EPOCHS:-1}
    BUDGET_MIN=${BUDGET_MIN:-5}
    SHARED=${CONTRACLUST_SHARED_DATA:-$REPO/../shared/data}
    WORK="$OUT/tiny-data"
    DATA="$WORK/cifar10-tiny.npz"
    EVAL_EVERY=1
    EXTRA=(--backbone small_cnn --batch-size "${BATCH:-128}")
    run mkdir -p "$WORK/root/cifar10/cifar-10-batches-bin"
    if [ "$DRY_RUN" != 1 ]; then
        for i in 01 02 03 04 05 06 07 08 09 10; do
            gzip -dc "$SHARED/cifar10-test_batch.bin.part${i}of10.gz"
        done >"$WORK/root/cifar10/cifar-10-batches-bin/test_batch.bin"
    fi
    run "$PY" -c "
import sys, numpy as np
from contraclust.data import load_dataset
ds = load_dataset('cifar10', root=sys.argv[1], split='test')
np.savez(sys.argv[2], x=ds.data[:512].numpy(), y=ds.labels[:512])
" "$WORK/root" "$DATA"
else
    DEVICE=cuda
    EPOCHS=${EPOCHS:-80}
    BUDGET_MIN=${BUDGET_MIN:-25}
    if [ -z "${CONTRACLUST_DATA:-}" ]; then
        echo "error: set CONTRACLUST_DATA to the folder holding cifar10/ (see the header)" >&2
        exit 2
    fi
    DATA=cifar10
    EXTRA=(--split all --data-root "$CONTRACLUST_DATA")
    if [ -n "${BATCH:-}" ]; then EXTRA+=(--batch-size "$BATCH"); fi
    if [ "$DRY_RUN" != 1 ]; then
        "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
            echo "error: no CUDA GPU visible to torch; use TINY=1 for the CPU check" >&2
            exit 2
        }
    fi
fi

run mkdir -p "$OUT"
if [ "$DRY_RUN" != 1 ]; then
    {
        date -u +"started %Y-%m-%dT%H:%M:%SZ"
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null ||
            echo "no nvidia-smi"
        "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    } >"$OUT/device.txt"
fi

set +e
run timeout --signal=INT --kill-after=60 "$((BUDGET_MIN * 60))" \
    "$VENV/bin/contraclust" fit "$DATA" --method "$METHOD" \
    --preset "$METHOD/cifar10" --device "$DEVICE" --epochs "$EPOCHS" \
    --eval-every "$EVAL_EVERY" --out "$OUT/run" --quiet "${EXTRA[@]}"
STATUS=$?
set -e
if [ "$DRY_RUN" = 1 ]; then exit 0; fi
if [ "$STATUS" -ne 0 ] && [ "$STATUS" -ne 124 ] && [ "$STATUS" -ne 130 ]; then
    echo "error: training failed with status $STATUS; see $OUT/run/train.log" >&2
    exit "$STATUS"
fi

# Per evaluated epoch: seconds since launch (from train.log's timestamps), ACC, NMI.
"$PY" - "$OUT" "$START" "$STATUS" "$BUDGET_MIN" "$METHOD" "$TINY" <<'EOF'
import datetime as dt, json, re, sys
from pathlib import Path

out, start, status, budget, method, tiny = sys.argv[1:]
start = float(start)
pattern = re.compile(r"^(\S+ \S+) INFO epoch (\d+)/(\d+) (.*)$")
rows = []
for line in (Path(out) / "run" / "train.log").read_text().splitlines():
    m = pattern.match(line)
    if not m:
        continue
    when = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    values = dict(kv.split("=", 1) for kv in m.group(4).split())
    row = {"epoch": int(m.group(2)), "elapsed_s": round(when - start, 1)}
    row.update({k: float(values[k]) for k in ("loss", "acc", "nmi", "ari") if k in values})
    rows.append(row)
summary = {
    "method": method,
    "tiny": tiny == "1",
    "budget_min": int(budget),
    "stopped_by_budget": status in ("124", "130"),
    "device": (Path(out) / "device.txt").read_text().strip().splitlines(),
    "epochs": rows,
}
(Path(out) / "gpu_cifar10.json").write_text(json.dumps(summary, indent=1) + "\n")
print(f"{'epoch':>5} {'elapsed s':>9} {'ACC':>6} {'NMI':>6}")
for r in rows:
    if "acc" in r:
        print(f"{r['epoch']:>5} {r['elapsed_s']:>9.1f} {r['acc']:>6.3f} {r['nmi']:>6.3f}")
print(f"wrote {out}/gpu_cifar10.json")
EOF
