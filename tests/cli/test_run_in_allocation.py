"""``hpc-nst run --cluster slurm-runner``: the driver rank gets Ctrl-C back as a
KeyboardInterrupt (dask_jobqueue's runner module makes SIGINT a ``sys.exit`` on import, which
skipped the interrupt's handling: exit 0, the finished work unsaved)."""

from __future__ import annotations

import contextlib
import signal
import sys
from types import SimpleNamespace

import hpc_nst.batch.cluster as cluster
import hpc_nst.batch.runner as runner
from hpc_nst.batch.cluster import ClusterOptions
from hpc_nst.cli import run_cmd


def test_the_driver_rank_handles_ctrl_c_as_an_interrupt(monkeypatch, tmp_path):
    @contextlib.contextmanager
    def fake_runner(copts, store):  # noqa: ANN001, ANN202
        signal.signal(signal.SIGINT, lambda *_: sys.exit())  # what the import does
        yield SimpleNamespace(n_workers=1, job_id="7")

    class FakeClient:
        def __init__(self, _runner) -> None: ...
        def __enter__(self) -> FakeClient:
            return self
        def __exit__(self, *exc: object) -> None: ...
        def wait_for_workers(self, n: int) -> None: ...

    seen = {}

    def fake_run_batch(*args, **kwargs) -> int:  # noqa: ANN002, ANN003
        seen["handler"] = signal.getsignal(signal.SIGINT)
        return 0

    import distributed

    before = signal.getsignal(signal.SIGINT)
    monkeypatch.setattr(cluster, "make_runner", fake_runner)
    monkeypatch.setattr(distributed, "Client", FakeClient)
    monkeypatch.setattr(runner, "register_drain", lambda client: None)
    monkeypatch.setattr(runner, "run_batch", fake_run_batch)
    try:
        args = SimpleNamespace(output=tmp_path / "s.zarr", manifest=tmp_path / "m.csv")
        assert run_cmd._in_allocation(args, None, None, ClusterOptions(kind="slurm-runner")) == 0
    finally:
        signal.signal(signal.SIGINT, before)
    assert seen["handler"] is signal.default_int_handler


def test_a_repeated_sigterm_is_one_stop_request(monkeypatch):
    """scancel signals the driver and the job script forwards it: the two arrive together and
    must not count as the second, "stop now", interrupt; one later still does."""
    import pytest

    clock = [100.0]
    monkeypatch.setattr(run_cmd.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(run_cmd, "_last_term", [-run_cmd.TERM_REPEAT_S])
    with pytest.raises(KeyboardInterrupt):
        run_cmd._sigterm(signal.SIGTERM, None)
    clock[0] += 0.01
    run_cmd._sigterm(signal.SIGTERM, None)  # the forwarded copy: ignored
    clock[0] += run_cmd.TERM_REPEAT_S
    with pytest.raises(KeyboardInterrupt):
        run_cmd._sigterm(signal.SIGTERM, None)
