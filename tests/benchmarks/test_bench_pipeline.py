"""benchmarks/bench_pipeline.py: a tiny real run, its JSON record and the README table."""

from __future__ import annotations

import json

import pytest

from tests.benchmarks.loader import load_benchmark

pytestmark = pytest.mark.slow


def _module():
    return load_benchmark("bench_pipeline")


def test_pipeline_benchmark_records_every_stage_and_builds_the_table(tmp_path, capsys):
    bench = _module()
    results = tmp_path / "results"
    tiny = ["iterations=3", "griffin_lim_iterations=2", "model=random", "width=4"]
    argv = ["--pairs", "3", "--lengths", "0.5", "1.0", "--results", str(results),
            "--tmp", str(tmp_path)]
    assert bench.main(argv + [x for s in tiny for x in ("--set", s)]) == 0
    (record,) = results.glob("pipeline-cpu-*.json")
    r = json.loads(record.read_text())
    assert r["done"] == 3 and r["device"] == "cpu" and r["iterations"] == 3
    assert set(r["stages_s"]) == set(bench.STAGES)
    assert all(v >= 0 for v in r["stages_s"].values())
    assert r["stages_s"]["optimisation"] > 0 and r["stages_s"]["metrics"] > 0
    assert r["padding_share"] == 0.0  # the CPU engine runs each pair alone
    assert r["commit"] and r["torch"] and r["pairs_per_hour"] > 0
    # the engine's stages cannot exceed the workers' time
    engine = sum(r["stages_s"][k] for k in ("features", "optimisation", "griffin_lim"))
    assert engine <= r["workers"] * r["wall_s"]
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{bench.MARK[0]}\nold\n{bench.MARK[1]}\nafter\n")
    bench.update_readme(bench.table(results), readme)
    text = readme.read_text()
    assert "old" not in text and text.startswith("before") and text.endswith("after\n")
    assert "| 3 × 0.5/1.0 s | 4 | 1 × " in text
