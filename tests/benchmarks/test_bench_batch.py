"""benchmarks/bench_batch.py: its file-count model matches a real finished store."""

from __future__ import annotations

import pytest

from tests.benchmarks.loader import load_benchmark

pytestmark = pytest.mark.slow


def _module():
    return load_benchmark("bench_batch")


def test_the_file_count_model_matches_a_real_store(tmp_path):
    bench = _module()
    folder, summary = bench._quick_run(tmp_path, 12, batch=4, batches_per_task=1,
                                       method="nst")  # (a per-pair method writes no loss)
    assert summary.done == 12
    # 3 shards of 4 pairs: every array's metadata, coordinates, driver chunks, worker shards
    assert bench.count_files(folder / "s.zarr") == bench.expected_files(12, 4)["total"]
