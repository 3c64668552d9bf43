#!/usr/bin/env bash
# Ablation of jobs/paper.toml on the DEV split (s256-000..007) only; one run at a time, 1 thread.
# Usage: benchmarks/experiments/run_ablation.sh LABEL [KEY=VALUE ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
label=$1; shift
sets=()
for kv in "$@"; do sets+=(--set "$kv"); done
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out=benchmarks/experiments/ablation_out
python benchmarks/quality_dev.py --split dev "${sets[@]}" --label "$label" \
    --csv "$out/$label.csv" | tee -a "$out/summary.txt"
