"""A full disk while a worker writes: the pairs end failed (never half-done) with the reason,
and rerunning after space is freed completes them; the store verifies."""

from __future__ import annotations

import errno

import numpy as np
import pytest
import xarray as xr

from hpc_nst.batch import worker as worker_mod
from hpc_nst.batch.runner import RunOptions, run_batch
from hpc_nst.batch.verify import verify_store

from .conftest import write_csv

pytestmark = pytest.mark.slow


@pytest.fixture
def threads_client():
    """Workers in this process (threads), so that the writer can be made to fail."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def test_enospc_in_the_writer_fails_the_pairs_and_a_rerun_completes(
        tmp_path, audio_dir, tiny, threads_client, monkeypatch):
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,b.wav,c.wav", "p3,c.wav,a.wav"])
    store = tmp_path / "s.zarr"
    real = worker_mod.write_task_data
    calls = {"n": 0}

    def full_disk(spec, results):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if any(p.pair_id == "p2" for p in spec.pairs):
            raise OSError(errno.ENOSPC, "No space left on device", str(spec.store))
        return real(spec, results)

    monkeypatch.setattr(worker_mod, "write_task_data", full_disk)
    opts = RunOptions(batch_size=1, batches_per_task=1, progress_interval=0, quiet=True)
    summary = run_batch(manifest, store, tiny, opts, client=threads_client)
    assert summary.done == 2 and summary.failed == 1
    ds = xr.open_zarr(store)
    err = str(ds.error.sel(pair="p2").values)
    assert int(ds.status.sel(pair="p2")) == 2 and "No space left on device" in err
    # the pair's own failure, saying what to do (the task raised: a worker traceback per try)
    assert err.startswith("could not write its results to the store") and \
        "rerun with --retry-failed" in err and "task for shard" not in err
    assert int(ds.samples.sel(pair="p2")) == 0  # nothing recorded for it: not half-done
    assert verify_store(store).ok
    # space freed: --retry-failed completes it
    monkeypatch.setattr(worker_mod, "write_task_data", real)
    summary = run_batch(manifest, store, tiny, RunOptions(
        batch_size=1, batches_per_task=1, progress_interval=0, quiet=True, retry_failed=True),
        client=threads_client)
    assert summary.done == 3 and summary.failed == 0
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).all() and np.isfinite(ds.audio.sel(pair="p2").values).all()
    assert verify_store(store).ok


def test_enospc_in_the_drivers_own_writes_is_a_clear_error_and_a_rerun_completes(
        tmp_path, audio_dir, tiny, threads_client, monkeypatch):
    """The driver's record of outcomes failing (a full disk, a quota) ends the run with an
    error that says what to do, not a traceback and exit code 1 ("a pair failed"); what it
    could not record stays pending and the rerun completes it."""
    from hpc_nst.batch import record as record_mod
    from hpc_nst.batch import store as st

    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,b.wav,c.wav"])
    store = tmp_path / "s.zarr"
    real = record_mod.Recorder.flush

    def full(self):  # noqa: ANN001, ANN202
        if self.dirty:
            raise OSError(errno.EDQUOT, "Disk quota exceeded")
        return real(self)

    monkeypatch.setattr(record_mod.Recorder, "flush", full)
    opts = RunOptions(batch_size=1, batches_per_task=1, progress_interval=0, quiet=True)
    with pytest.raises(st.StoreError, match=r"cannot record the results \(Disk quota exceeded\)"
                                            r".*rerun the same command"):
        run_batch(manifest, store, tiny, opts, client=threads_client)
    monkeypatch.setattr(record_mod.Recorder, "flush", real)
    summary = run_batch(manifest, store, tiny, opts, client=threads_client)
    assert summary.done == 2 and summary.failed == 0
    assert verify_store(store).ok
