"""The driver killed (SIGKILL) or stopped (SIGTERM) mid-run: the rerun resumes, nothing done is
redone, the store verifies, and the outputs are the bits of an undisturbed run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import xarray as xr

from hpc_nst.batch.store import LOCK_NAME
from hpc_nst.cli import main

from .conftest import SR, tone

pytestmark = pytest.mark.slow
SETS = ["--set", "iterations=30", "--set", "griffin_lim_iterations=2", "--set", "width=4"]


def _manifest(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"x{i}.wav", tone(220 * (i + 1), 0.6), SR)
    rows = [f"p{i}{j},x{i}.wav,x{j}.wav" for i in range(3) for j in range(3) if i != j]
    (tmp_path / "m.csv").write_text("pair_id,content,style\n" + "\n".join(rows) + "\n")
    return tmp_path / "m.csv"


def _args(manifest, store):
    return ["run", str(manifest), "-o", str(store), "--workers", "1", "--batch-size", "1",
            "--tasks-per-worker", "2", "--progress-interval", "0", *SETS]


def _start_and_stop(manifest, store, sig: int, *extra: str,
                    group: bool = False) -> subprocess.Popen:
    """Start a driver in its own process group (output to ``<store>.log``: a pipe nobody
    reads would fill and block it); send ``sig`` once a pair is done."""
    log = open(f"{store}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "hpc_nst", *_args(manifest, store), *extra],
                            stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        if (store / "zarr.json").exists() and (xr.open_zarr(store).status.values == 1).any():
            break
    assert proc.poll() is None, proc.communicate()[0]
    if sig == signal.SIGKILL or group:  # the driver and its local workers: a node failure,
        os.killpg(proc.pid, sig)  # or a terminal's Ctrl-C (it goes to the process group)
    else:
        os.kill(proc.pid, sig)
    proc.wait(timeout=120)
    return proc


def test_driver_sigkill_then_rerun_resumes_with_the_same_bits(tmp_path, capsys):
    manifest = _manifest(tmp_path)
    store = tmp_path / "k.zarr"
    proc = _start_and_stop(manifest, store, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    before = xr.open_zarr(store).load()
    done = before.pair.values[before.status.values == 1]
    assert 0 < len(done) < 6 and (store / LOCK_NAME).exists()  # the lock outlived the driver
    assert main(_args(manifest, store)) == 0  # stale lock (dead pid, this host) taken over
    after = xr.open_zarr(store).load()
    assert (after.status.values == 1).all()
    for pid in done:  # nothing done was redone
        assert after.attempts.sel(pair=pid) == before.attempts.sel(pair=pid)
        assert after.finished_at.sel(pair=pid) == before.finished_at.sel(pair=pid)
    assert main(["verify", str(store)]) == 0
    ref = tmp_path / "ref.zarr"
    assert main(_args(manifest, ref)) == 0
    want = xr.open_zarr(ref)
    for pid in after.pair.values:
        np.testing.assert_array_equal(after.audio.sel(pair=pid).values,
                                      want.audio.sel(pair=pid).values)


def test_driver_sigterm_finishes_running_tasks_releases_the_lock_and_says_so(tmp_path):
    manifest = _manifest(tmp_path)
    store = tmp_path / "t.zarr"
    # tasks of a few seconds: the store shows a pair done (the driver records at most once a
    # second) well before the last task ends, even with two tasks at a time
    proc = _start_and_stop(manifest, store, signal.SIGTERM, "--set", "iterations=150")
    out = Path(f"{store}.log").read_text()
    assert proc.returncode == 143, out  # 128 + SIGTERM, as a process it killed; Ctrl-C: 130
    waiting = re.search(r"interrupted: no new task starts; waiting up to 60 s for (\d) running "
                        r"task\(s\)", out)
    assert waiting, out
    assert "interrupted: finished pairs are saved; rerun the same command to resume" in out
    assert not (store / LOCK_NAME).exists()
    ds = xr.open_zarr(store)
    done = int((ds.status.values == 1).sum())
    # a task running at the signal (there is one, unless the signal fell between two tasks)
    # was finished and saved: more than the one seen done
    assert 1 + int(waiting.group(1)) <= done < 6, out
    assert main(["verify", str(store)]) == 0
    assert main([*_args(manifest, store), "--set", "iterations=150"]) == 0


def test_a_terminals_ctrl_c_reaching_the_workers_too_still_finishes_their_tasks(tmp_path):
    """Ctrl-C in a terminal signals the whole process group: the local workers got it too and
    died, so the grace period waited for "0 running task(s)" and lost the work in hand."""
    manifest = _manifest(tmp_path)
    store = tmp_path / "g.zarr"
    proc = _start_and_stop(manifest, store, signal.SIGINT, "--set", "iterations=150",
                           group=True)
    out = Path(f"{store}.log").read_text()
    assert proc.returncode == 130, out
    waiting = re.search(r"waiting up to 60 s for (\d) running task\(s\)", out)
    assert waiting, out
    done = int((xr.open_zarr(store).status.values == 1).sum())
    assert 1 + int(waiting.group(1)) <= done < 6, out
    assert "KilledWorker" not in out and "CancelledError" not in out, out


def test_a_second_interrupt_stops_at_once(tmp_path):
    manifest = _manifest(tmp_path)
    store = tmp_path / "t2.zarr"
    log = tmp_path / "out.log"
    proc = subprocess.Popen([sys.executable, "-m", "hpc_nst", *_args(manifest, store),
                             # tasks that outlast the 1.5 s between the interrupts even on a
                             # fast CPU (400 iterations finished within it on an AVX-512 VM,
                             # and the second Ctrl-C then came after the run had ended)
                             "--set", "iterations=5000"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (store / "zarr.json").exists():
        time.sleep(0.2)
    time.sleep(3)  # a long task is running
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(1.5)
    t0 = time.time()
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=60)
    out = log.read_text()
    assert time.time() - t0 < 20, out  # not the 60 s grace
    assert proc.returncode == 130, out
    assert "Ctrl-C again to stop now" in out
    assert not (store / LOCK_NAME).exists()
    assert main(["verify", str(store)]) == 0


def test_a_ctrl_c_while_tasks_are_still_being_submitted_waits_for_the_running_ones(
        tmp_path, capsys, monkeypatch):
    """A Ctrl-C in the first seconds of a run (tasks still being submitted) skipped the grace
    wait: the running tasks were cancelled and their worker killed."""
    from hpc_nst.batch import dispatch

    real = dispatch.Dispatch.submit
    calls = []

    def submit(self, task):  # noqa: ANN001, ANN202
        calls.append(task)
        if len(calls) == 3:  # the first task is running by now: then the interrupt
            deadline = time.time() + 60
            while time.time() < deadline and not self.client.processing().get(
                    next(iter(self.client.scheduler_info()["workers"]), None)):
                time.sleep(0.1)
            time.sleep(1.0)
            raise KeyboardInterrupt
        return real(self, task)

    monkeypatch.setattr(dispatch.Dispatch, "submit", submit)
    manifest = _manifest(tmp_path)
    store = tmp_path / "s.zarr"
    assert main([*_args(manifest, store)[:-6], "--set", "iterations=150", *SETS[2:]]) == 130
    out = capsys.readouterr()
    assert "waiting up to 60 s for" in out.out + out.err
    assert int((xr.open_zarr(store).status.values == 1).sum()) >= 1  # the running one
    assert not (store / LOCK_NAME).exists()


def test_a_ctrl_c_inside_a_submission_does_not_wait_the_whole_grace(tmp_path, capsys,
                                                                     monkeypatch):
    """The task was registered before the scheduler had it: interrupted inside the submit,
    the grace wait counted it as running and waited out the whole --grace for it."""
    import distributed

    real = distributed.Client.submit
    calls: list[float] = []

    def submit(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if kwargs.get("key", "").startswith("hpc-nst") or calls:
            calls.append(time.time())
            if len(calls) == 2:
                time.sleep(1.0)  # the first task starts
                raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "submit", submit)
    manifest = _manifest(tmp_path)
    store = tmp_path / "s.zarr"
    args = [*_args(manifest, store)[:-6], "--set", "iterations=60", *SETS[2:], "--grace", "30"]
    assert main(args) == 130
    assert time.time() - calls[1] < 20  # the running task's seconds, not the 30 s grace
    out = capsys.readouterr()
    assert "for 1 running task(s)" in out.out + out.err


def _signalled_after_created(manifest: Path, store: Path, delay: float,
                             send) -> tuple[subprocess.Popen, str]:  # noqa: ANN001
    """A driver started in its own process group, ``send(pid)`` ``delay`` s after it printed
    "created" (the cluster starting); its exit and log."""
    log = open(f"{store}.log", "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen([sys.executable, "-m", "hpc_nst", *_args(manifest, store),
                             "--set", "iterations=150"], stdout=log,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and "created" not in Path(f"{store}.log").read_text():
        time.sleep(0.005)
    time.sleep(delay)
    send(proc.pid)
    proc.wait(timeout=120)
    return proc, Path(f"{store}.log").read_text()


def test_a_sigterm_while_the_local_cluster_starts_stops_the_run_cleanly(tmp_path):
    """SIGTERM in the second after "created" printed tracebacks of a half-started cluster
    ("Exception ignored in atexit callback", "cannot schedule new futures")."""
    manifest = _manifest(tmp_path)
    # 0.05 s: while the driver still reads the store after creating it, zarr's I/O thread
    # busy (at exit its tasks were destroyed mid-way: "Task was destroyed but it is pending",
    # "cannot schedule new futures after shutdown"); 0.2 s: the cluster is starting
    for delay in (0.05, 0.2):
        store = tmp_path / f"c{delay}.zarr"
        proc, out = _signalled_after_created(manifest, store, delay,
                                             lambda pid: os.kill(pid, signal.SIGTERM))
        assert proc.returncode == 143, out
        assert "Traceback" not in out and "Exception ignored" not in out, out
        assert "destroyed but it is pending" not in out, out
        assert int((xr.open_zarr(store).status.values == 1).sum()) < 6, out
        assert not (store / LOCK_NAME).exists()
    assert main([*_args(manifest, store), "--set", "iterations=150"]) == 0  # resumes


def test_a_ctrl_c_while_the_local_cluster_starts_stops_the_run(tmp_path):
    """A Ctrl-C in the second or two of the local cluster's start was lost (the driver
    ignored SIGINT meanwhile, for its workers to inherit): the run went on. Now it is held
    and the run stops once the cluster is up, before any task: to the driver alone (a
    script's kill -INT) and to the process group (a terminal's Ctrl-C)."""
    manifest = _manifest(tmp_path)
    for group in (False, True):
        store = tmp_path / f"i{int(group)}.zarr"
        proc, out = _signalled_after_created(
            manifest, store, 0.2,
            lambda pid, g=group: (os.killpg if g else os.kill)(pid, signal.SIGINT))
        assert proc.returncode == 130, out
        assert "interrupted" in out and int((xr.open_zarr(store).status.values == 1).sum()) \
            == 0, out
        assert not (store / LOCK_NAME).exists()
        if not group:  # (a terminal's Ctrl-C also stops the starting workers' imports)
            assert "Traceback" not in out, out


def test_a_ctrl_c_held_while_a_cluster_starts_stops_it_after():
    from hpc_nst.batch.held_signals import started_holding_signals

    closed = []

    class Cluster:
        def close(self):  # noqa: ANN202
            closed.append(1)

    def start_interrupted():  # noqa: ANN202
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # (a KeyboardInterrupt here would leave the start half done)
        return Cluster()

    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            started_holding_signals(start_interrupted)
        assert closed == [1] and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        # a driver started in the background ignores SIGINT: nothing to deliver, none stops it
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        assert isinstance(started_holding_signals(start_interrupted), Cluster)
        assert closed == [1] and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)


def test_store_io_left_running_by_an_interrupt_is_settled_before_exit():
    """What an interrupted call left on zarr's I/O loop is waited for (it was destroyed at
    exit); nothing pending, or zarr never used: returns at once."""
    import asyncio

    from zarr.core.sync import _get_loop

    from hpc_nst.fsutil import settle_store_io

    finished = []

    async def slow_write() -> None:
        await asyncio.sleep(0.5)
        finished.append(1)

    asyncio.run_coroutine_threadsafe(slow_write(), _get_loop())
    assert settle_store_io() is True and finished == [1]
    assert settle_store_io() is False
    # a second Ctrl-C while it waits: it gives up quietly (it escaped the CLI's main)
    asyncio.run_coroutine_threadsafe(slow_write(), _get_loop())
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        alarm = signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGINT))
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        assert settle_store_io() is False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, alarm)
        signal.signal(signal.SIGINT, before)
    time.sleep(0.6)
    assert finished == [1, 1]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_signal_held_while_a_cluster_starts_is_delivered_after_it(signum):
    """A SIGTERM (or hpc-nst run's other stop signal, SIGUSR1: the job script's time-limit
    warning) in the cluster's start left a half-started cluster's traceback: held, the
    cluster closed, then delivered to its handler."""
    from hpc_nst.batch.held_signals import started_holding_signals

    closed, got = [], []

    class Cluster:
        def close(self):  # noqa: ANN202
            closed.append(1)

    def start_signalled():  # noqa: ANN202
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # (a handler raising here would leave the start half done)
        return Cluster()

    def handler(signum, frame):  # noqa: ANN001, ANN202
        got.append(signum)
        raise KeyboardInterrupt

    before = signal.signal(signum, handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            started_holding_signals(start_signalled)
        assert closed == [1] and got == [signum]
        assert signal.getsignal(signum) is handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert isinstance(started_holding_signals(Cluster), Cluster)  # no signal: as it was
    finally:
        signal.signal(signum, before)
