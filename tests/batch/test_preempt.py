"""A worker that gets SIGUSR1 (walltime near, preemption) finishes its task, then leaves."""

from __future__ import annotations

import os
import signal
import time

import pytest

from hpc_nst.batch.preempt import DrainOnSignal

pytestmark = pytest.mark.slow


def _slow(x: int) -> int:
    import time

    time.sleep(1.5)
    return x * 2


def test_sigusr1_drains_the_worker_without_recomputing(capfd):
    from distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        client.register_plugin(DrainOnSignal())
        pids = client.run(os.getpid)
        # as the driver does: each result taken and released as it comes
        futures = as_completed([client.submit(_slow, i, pure=False) for i in range(6)])
        while not any(client.processing().values()):
            time.sleep(0.05)
        time.sleep(0.3)  # both workers are in a task
        address, pid = next(iter(pids.items()))
        os.kill(pid, signal.SIGUSR1)
        results = []
        for fut in futures:
            results.append(fut.result())
            fut.release()
        assert sorted(results) == [0, 2, 4, 6, 8, 10]
        # no task ran twice: none was lost with the leaving worker
        suspicious = client.run_on_scheduler(
            lambda dask_scheduler: [ts.suspicious for ts in dask_scheduler.tasks.values()])
        assert not any(suspicious)
    err = capfd.readouterr().err
    assert "got SIGUSR1: finishing 1 task(s) in hand, then leaving" in err
    assert "leaves after SIGUSR1" in err
