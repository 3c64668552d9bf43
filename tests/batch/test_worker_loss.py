"""A worker process killed mid-task loses nothing: its task is rerun elsewhere."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import xarray as xr

from hpc_nst.batch import store as st
from hpc_nst.batch.cluster import TASK_PREFIX
from hpc_nst.batch.runner import RunOptions, run_batch
from hpc_nst.config import load_job

from .conftest import TINY, write_csv

pytestmark = pytest.mark.slow


def _busy_worker(client) -> str | None:
    """Address of a worker that is running one of our tasks right now."""
    for addr, keys in client.processing().items():
        if any(str(k).startswith(TASK_PREFIX) for k in keys):
            return addr
    return None


def test_killed_worker_loses_nothing(tmp_path, audio_dir):
    from distributed import Client, LocalCluster

    rows = [f"p{i},{c},{s}" for i, (c, s) in enumerate(
        [("a.wav", "b.wav"), ("b.wav", "c.wav"), ("d.wav", "a.wav"), ("c.wav", "d.wav"),
         ("a.wav", "d.wav"), ("b.wav", "a.wav")])]
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", rows)
    store = tmp_path / "k.zarr"
    # Long enough that a task is surely still running when its worker is killed.
    cfg = load_job(overrides=dict(s.split("=") for s in TINY) | {"iterations": "60"})
    result = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        opts = RunOptions(batch_size=1, batches_per_task=1, progress_interval=0, quiet=True)
        runner = threading.Thread(target=lambda: result.update(
            summary=run_batch(manifest, store, cfg, opts, client=client)))
        runner.start()
        deadline = time.time() + 120
        addr = None
        while addr is None and time.time() < deadline and runner.is_alive():
            time.sleep(0.2)
            addr = _busy_worker(client)
        assert addr is not None, "no task ever ran"
        time.sleep(0.5)  # well inside the task
        pid = client.run(os.getpid, workers=[addr])[addr]
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=240)
        assert not runner.is_alive()
    summary = result["summary"]
    assert (summary.done, summary.failed, summary.pending) == (6, 0, 0)
    ds = xr.open_zarr(store)
    assert (ds.status.values == st.DONE).all()
    assert (ds.attempts.values >= 1).all()
    assert (ds.attempts.values >= 2).any(), ds.attempts.values  # the killed task ran again
    # (counted from the executions announced: dask reran it under the same key, which the
    # driver's own count of tries never sees; a task only queued there is not counted)
    assert (ds.attempts.values <= 2).all(), ds.attempts.values
    assert (ds.records.values == 61).all()
