"""Accounting per pair (scheduler job, device, peak memory, device and wall seconds) in the
store, ``status`` and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from hpc_nst.cli import main

from .conftest import TINY, write_csv

pytestmark = pytest.mark.slow


def test_accounting_reaches_store_status_and_report(tmp_path, audio_dir, monkeypatch, capsys):
    # Workers of a local cluster run inside the driver's batch job: they inherit its id.
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,b.wav,c.wav", "p3,c.wav,a.wav"])
    store = tmp_path / "acct.zarr"
    assert main(["run", str(manifest), "-o", str(store), "--workers", "1", "--batch-size", "2",
                 "--progress-interval", "0", *[x for s in TINY for x in ("--set", s)]]) == 0
    ds = xr.open_zarr(store)
    assert list(ds.scheduler_job.values) == ["777"] * 3
    assert all(str(n).startswith("CPU") for n in ds.device_name.values)
    assert (ds.peak_memory_mb.values > 50).all()  # a torch worker's resident set
    assert (ds.device_s.values > 0).all() and (ds.wall_s.values >= ds.device_s.values).all()
    assert ds.device_s.attrs["units"] == "s" and ds.peak_memory_mb.attrs["units"] == "MiB"
    capsys.readouterr()
    assert main(["status", str(store), "--json"]) == 0
    acct = json.loads(capsys.readouterr().out)["accounting"]
    assert acct["scheduler_jobs"] == ["777"]
    assert acct["device_hours"]["cpu"] == pytest.approx(ds.device_s.values.sum() / 3600,
                                                        abs=1e-6)
    assert main(["status", str(store)]) == 0
    assert "CPU-hours" in capsys.readouterr().out
    report = tmp_path / "report"
    assert main(["report", str(store), "-o", str(report), "--metrics", "run", "--quiet"]) == 0
    summary = (report / "summary.md").read_text()
    assert "## Accounting (by job)" in summary and "device_hours" in summary
    import pandas as pd

    pairs = pd.read_parquet(report / "pairs.parquet")
    np.testing.assert_allclose(sorted(pairs.device_s), sorted(ds.device_s.values))
