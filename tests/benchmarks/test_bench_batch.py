"""benchmarks/bench_batch.py: its file-count model matches a real finished store."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_batch.py"

pytestmark = pytest.mark.slow


def _module():
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec = importlib.util.spec_from_file_location("bench_batch", BENCH)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH.parent))
    return mod


def test_the_file_count_model_matches_a_real_store(tmp_path):
    bench = _module()
    folder, summary = bench._quick_run(tmp_path, 12, batch=4, batches_per_task=1,
                                       method="nst")  # (a per-pair method writes no loss)
    assert summary.done == 12
    # 3 shards of 4 pairs: every array's metadata, coordinates, driver chunks, worker shards
    assert bench.count_files(folder / "s.zarr") == bench.expected_files(12, 4)["total"]
