"""Table builders from plain records: streaming files, running group statistics, Markdown."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from hpc_nst.report import tables


def test_group_stats_match_numpy_and_skip_non_done_and_nan():
    rng = np.random.default_rng(0)
    gs = tables.GroupStats(("job",), ("a", "b"))
    values: dict[str, list[float]] = {"x": [], "y": []}
    for k in range(500):
        job = "x" if k % 3 else "y"
        a = float(rng.normal(10, 3))
        gs.add({"job": job, "status": "done", "a": a, "b": math.nan})
        values[job].append(a)
    gs.add({"job": "x", "status": "failed", "a": 1e9})
    gs.add({"job": "x", "status": "pending"})
    rows = {r["job"]: r for r in gs.rows()}
    for job, v in values.items():
        assert rows[job]["a_mean"] == pytest.approx(np.mean(v))
        assert rows[job]["a_std"] == pytest.approx(np.std(v, ddof=1))
        assert math.isnan(rows[job]["b_mean"]) and math.isnan(rows[job]["b_std"])
    assert (rows["x"]["pairs"], rows["x"]["done"], rows["x"]["failed"]) == (
        len(values["x"]) + 2, len(values["x"]), 1)
    assert gs.present() == ["a"]
    single = tables.GroupStats(("job",), ("a",))
    single.add({"job": "z", "status": "done", "a": 2.0})
    assert single.rows()[0]["a_mean"] == 2.0 and math.isnan(single.rows()[0]["a_std"])


def test_row_writer_streams_identical_csv_parquet_markdown(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "PARQUET_BATCH", 7)  # several row groups
    cols, numeric = ["job", "n", "v", "note"], ["v"]
    rows = [{"job": f"j{k % 2}", "n": k, "v": k / 3 if k % 5 else math.nan,
             "note": "a|b" if k == 3 else ""} for k in range(23)]
    with tables.RowWriter(tmp_path, "t", cols, numeric, ints=("n",)) as w:
        for r in rows:
            w.write(r)
    assert w.count == 23
    pq = pd.read_parquet(tmp_path / "t.parquet")
    csv = pd.read_csv(tmp_path / "t.csv", keep_default_na=False, na_values=[""])
    assert list(pq.columns) == cols and len(pq) == len(csv) == 23
    assert str(pq.n.dtype) == "int64" and str(pq.v.dtype) == "float64"
    np.testing.assert_array_equal(pq.v.to_numpy(), csv.v.to_numpy())
    assert pq.v.isna().sum() == 5
    md = (tmp_path / "t.md").read_text().splitlines()
    assert len(md) == 25 and md[1] == "|---|---|---|---|"
    assert "a\\|b" in md[2 + 3]  # pipes are escaped, so the row keeps 4 cells
    import pyarrow.parquet as papq

    assert papq.ParquetFile(tmp_path / "t.parquet").num_row_groups == 4


def test_summaries_written_in_three_formats(tmp_path):
    stats = {name: tables.GroupStats(keys, ("lsd_db", "runtime_s"))
             for name, keys in tables.GROUPINGS.items()}
    for k in range(6):
        row = {"job": "nst" if k < 3 else "eq", "method": "m", "style_label": "Violin",
               "content_label": "" if k == 0 else "Flute", "status": "done",
               "lsd_db": float(k), "runtime_s": 1.0}
        for gs in stats.values():
            gs.add(row)
    written = tables.write_summaries(tmp_path, stats)
    assert set(written) == {"job", "style", "content"}
    df = pd.read_parquet(tmp_path / "summary_by_job.parquet").set_index("job")
    assert df.loc["nst", "lsd_db_mean"] == 1.0 and df.loc["eq", "lsd_db_std"] == 1.0
    content = pd.read_csv(tmp_path / "summary_by_content.csv")
    assert set(content.content_label) == {"(none)", "Flute"}
    md = (tmp_path / "summary.md").read_text()
    assert "## Headline (by job)" in md and "| nst | m | 3 | 3 | 0 | 1 ± 1 |" in md


def test_fmt_and_markdown_table():
    assert tables.fmt(math.nan) == "" and tables.fmt(1234.5678) == "1235"
    assert tables.fmt(1e-5) == "1.000e-05" and tables.fmt(0.0) == "0" and tables.fmt(3) == "3"
    text = tables.markdown_table(["a", "b"], [[1.5, "x|y"]])
    assert text == "| a | b |\n|---|---|\n| 1.5 | x\\|y |\n"
