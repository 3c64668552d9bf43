#!/usr/bin/env bash
# Row 5: the time-lagged Gram term (hpc_nst/engine/terms/lagged_gram.py) at three weights,
# after its unit tests; run after queue 1, one process at a time.
set -uo pipefail
cd "$(dirname "$0")/../.."
R=benchmarks/experiments/run_ablation.sh
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=$PWD python -m pytest -q -p no:cacheprovider \
    tests/engine/terms/test_lagged_gram.py
for w in 30 100 300; do
  $R lag$w-noise loss.term_weights.lagged_gram=$w
done
