"""Random task failures and killed workers under load (benchmarks/bench_load.py, small):
every pair ends done after --retry-failed reruns, and the store verifies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_load.py"


def test_random_failures_and_kills_end_all_done_and_verified():
    out = subprocess.run([sys.executable, str(BENCH), "--pairs", "240", "--workers", "2",
                          "--fail", "0.3", "--kill", "0.02"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = out.stdout.strip().splitlines()[-1]
    assert "240 pairs" in summary and "all done after" in summary, out.stdout
    assert "240 checked, 0 bad, ok=True" in summary, out.stdout
    # the faults did happen (a pair fails when its batch and then itself fail: 0.3 x 0.3, so
    # ~22 of 240 in round 0): a retry round was needed
    assert any(line.startswith("round 1:") for line in out.stdout.splitlines()), out.stdout
