#!/usr/bin/env bash
# Wheels that a lent GPU machine lacks, for benchmarks/gpu_checks.sh: it has Python 3.12 and
# torch 2.11 (and numpy) but not dask, zarr or soundfile, and it cannot reach PyPI. Run here
# once; the device call then names `wheels` in `carry`. The working tree (about 25 MB) and the
# carried paths travel within 64 MiB together, so numpy and pandas (29 MB) are left out unless
# KEEP_NUMPY=1 (about 17 MB without them, 46 MB with).
#   [KEEP_NUMPY=1] bash benchmarks/gpu_wheels.sh [DIR]      (default: wheels/, ignored by git)
set -euo pipefail
dir=${1:-wheels}
mkdir -p "$dir"
# the versions installed here, so that both machines run the same libraries
pins=$(pip freeze | grep -iE '^(dask|distributed|dask-jobqueue|zarr|numcodecs|soundfile|soxr|psutil|xarray|pandas|numpy)==' || true)
pip download -q -d "$dir" --python-version 3.12 --only-binary=:all: \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_28_x86_64 ${pins:-dask distributed dask-jobqueue zarr soundfile soxr psutil xarray}
if [ "${KEEP_NUMPY:-0}" != 1 ]; then
    rm -f "$dir"/numpy-*.whl "$dir"/pandas-*.whl
fi
du -sh "$dir"
