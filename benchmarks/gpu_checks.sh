#!/usr/bin/env bash
# Issue 16's GPU measurements in one run (sized for about 8 minutes on one H100), for a
# session that is lent a GPU. Prepare the wheels here first (benchmarks/gpu_wheels.sh), then
# call the device tool with  carry: ["wheels"]  and the command
#   bash benchmarks/gpu_checks.sh
# Everything it prints also goes to $OUT (the device tool brings that folder back): the
# engine's step rate (fp32, bf16) and the pipeline end to end with one and with two tasks per
# GPU worker (bench_pipeline's JSON: pairs/h, the stages, the batch sizes chosen).
# A rehearsal on a CPU checks the script itself in a minute:
#   DEVICE=cpu PAIRS=4 BATCH=2 EXTRA="--set iterations=3" OUT=/tmp/gpu bash benchmarks/gpu_checks.sh
set -euo pipefail
OUT=${OUT:-out/gpu}
PY=${PY:-python3}  # the image's Python 3.12 (torch 2.11, numpy, pandas, xarray, psutil)
PAIRS=${PAIRS:-1024}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-64}
EXTRA=${EXTRA:-}  # more bench_pipeline arguments, e.g. --set optim.precision=bf16
mkdir -p "$OUT"
if [ -d wheels ]; then
    # numpy and pandas from the machine's own Python where the wheels leave them out
    $PY -m pip install -q --no-index --find-links wheels dask distributed dask-jobqueue \
        zarr soundfile soxr psutil xarray
    $PY -m pip install -q --no-deps --no-build-isolation -e .
fi
{
    if [ "$DEVICE" = cuda ]; then
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    fi
    $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name())"
    $PY benchmarks/bench_engine.py --device "$DEVICE" --batch-sizes 1 16 "$BATCH" --iterations 20
    $PY benchmarks/bench_engine.py --device "$DEVICE" --batch-sizes "$BATCH" --iterations 20 \
        --precision bf16
} 2>&1 | tee "$OUT/engine.txt"
for slots in 1 2; do
    # shellcheck disable=SC2086  # EXTRA is a list of arguments
    timeout 200 $PY benchmarks/bench_pipeline.py --pairs "$PAIRS" --device "$DEVICE" \
        --workers 1 --tasks-per-worker "$slots" --batch-size "$BATCH" --no-report $EXTRA \
        --results "$OUT" 2>&1 | tail -n 40 | tee "$OUT/pipeline-$slots.txt" || true
done
ls -l "$OUT"
