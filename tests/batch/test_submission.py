"""Cluster options checked up front, worker jobs tried before a run, refused submissions.

The refusals come from stand-in ``sbatch``/``qsub`` scripts put first on ``PATH`` (the fault
injected is the scheduler saying no); the real Slurm's answers are in
``tests/integration/test_batch_slurm.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import pytest
import xarray as xr

from hpc_nst.batch.cluster import ClusterOptions
from hpc_nst.batch.lock import LOCK_NAME
from hpc_nst.batch.submission import SubmissionWatch, check_options, preflight
from hpc_nst.errors import ClusterError, ConfigError

REPO = Path(__file__).resolve().parents[2]
TINY = ["--set", "iterations=3", "--set", "griffin_lim_iterations=2", "--set", "width=4"]


def _fake(bin_dir: Path, name: str, test_only: str, submit: str) -> Path:
    """A stand-in scheduler command: ``test_only``/``submit`` are 'ok' or an error line."""
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name

    def answer(what: str) -> str:
        return "echo 'sbatch: Job 7 to start now' >&2; exit 0" if what == "ok" else \
            f"echo '{what}' >&2; exit 1"

    script.write_text(f'#!/bin/bash\nif [[ "$1" == "--test-only" ]]; then {answer(test_only)}; '
                      f"fi\n{answer(submit)}\n")
    script.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize("kind, good, bad", [
    ("slurm", ["30", "10:00", "2:00:00", "1-12", "1-12:30", "1-0:0:5", "UNLIMITED",
               "infinite", "-1"],
     ["banana", "1:2:3:4", "2h", "-5", "1-"]),
    ("pbs", ["3600", "01:00:00", "10:00", "2:12:00:00", "240:00:00"], ["1-12", "1:2:3:4:5",
                                                                      "1h"]),
    ("sge", ["3600", "01:00:00", "INFINITY"], ["1-12", "unlimited"]),
    ("lsf", ["120", "2:00"], ["2:00:00", "two hours"]),
])
def test_walltimes_in_each_schedulers_formats(kind, good, bad):
    for text in good:
        assert check_options(ClusterOptions(kind=kind, walltime=text)) == []
    for text in bad:
        with pytest.raises(ConfigError, match=rf"--walltime '{text}': not a {kind} walltime"):
            check_options(ClusterOptions(kind=kind, walltime=text))


def test_memory_must_be_an_amount_and_a_configured_one_is_named():
    assert check_options(ClusterOptions(kind="slurm", memory="32GiB")) == []
    for text in ("lots", "0GB", "-4GB"):
        with pytest.raises(ConfigError, match=rf"--memory '{text}': not an amount of memory"):
            check_options(ClusterOptions(kind="slurm", memory=text))
    with dask.config.set({"jobqueue.slurm.memory": "plenty", "jobqueue.slurm.walltime": "x"}):
        with pytest.raises(ConfigError, match=r"jobqueue\.slurm\.memory \(dask configuration\)"):
            check_options(ClusterOptions(kind="slurm"))
        # the command line wins over the configuration
        with pytest.raises(ConfigError, match=r"jobqueue\.slurm\.walltime"):
            check_options(ClusterOptions(kind="slurm", memory="4GB"))


def test_local_cluster_names_the_options_it_ignores():
    assert check_options(ClusterOptions()) == []
    warnings = check_options(ClusterOptions(walltime="1:00:00", memory="3GB",
                                            job_extra=["--qos=x"]))
    assert len(warnings) == 1
    assert "--walltime, --memory, --job-extra ignored: --cluster local" in warnings[0]


def test_preflight_reports_the_schedulers_refusal(tmp_path, monkeypatch):
    opts = ClusterOptions(kind="slurm", queue="nosuch")
    monkeypatch.setenv("PATH", f"{tmp_path / 'none'}:/usr/bin/false-dir")
    with pytest.raises(ClusterError, match="'sbatch' is not on PATH here"):
        preflight(opts, "#!/bin/bash\n")
    with pytest.raises(ClusterError, match="'qsub' is not on PATH here"):
        preflight(ClusterOptions(kind="pbs"), "#!/bin/bash\n")
    bin_dir = _fake(tmp_path / "bin", "sbatch",
                    "sbatch: error: invalid partition specified: nosuch", "ok")
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    with pytest.raises(ClusterError, match=r"Slurm refuses the worker job \(sbatch --test-only"
                       r"\): sbatch: error: invalid partition specified: nosuch; check --queue"):
        preflight(opts, "#!/bin/bash\n")
    _fake(bin_dir, "sbatch", "ok", "ok")
    assert "to start" in preflight(opts, "#!/bin/bash\n")
    # a driver inside an sbatch job: its SBATCH_* variables (which override #SBATCH lines)
    # are scrubbed for the worker jobs, so for their test too
    (bin_dir / "sbatch").write_text('#!/bin/bash\nif [[ -n "$SBATCH_PARTITION" ]]; then echo '
                                    '"sbatch: error: invalid partition: $SBATCH_PARTITION" >&2;'
                                    ' exit 1; fi\necho "sbatch: Job 7 to start now" >&2\n')
    monkeypatch.setenv("SBATCH_PARTITION", "nosuch")
    assert "to start" in preflight(opts, "#!/bin/bash\n")
    # a dry run previewing the script on a machine without the scheduler: a note
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    assert preflight(opts, "", missing_ok=True) == "not tested: 'sbatch' is not on PATH here"


class _Job:
    def __init__(self, job_id):
        self.job_id = job_id


class _Client:
    def scheduler_info(self):
        return {"workers": {}}


class _Cluster:
    def __init__(self, *job_ids):
        self.workers = {f"w{i}": _Job(j) for i, j in enumerate(job_ids)}


def test_the_watch_stops_a_run_only_with_no_worker_and_no_job_submitted(caplog):
    watch = SubmissionWatch(retries=0, backoff_s=0.0)
    stop = watch.start(_Client(), _Cluster("4242", None), interval=0.05)
    watch.failed, watch.last_error = 1, "sbatch: error: QOSMaxSubmitJobPerUserLimit"
    time.sleep(0.5)  # a job is queued: it may start later, the run goes on
    stop.set()
    assert not watch.fatal
    assert "the run goes on with 0 connected worker(s) and 1 submitted job(s)" in caplog.text
    watch = SubmissionWatch(retries=0, backoff_s=0.0)
    stop = watch.start(_Client(), _Cluster(None), interval=0.05)
    watch.failed, watch.last_error = 1, "sbatch: error: QOSMaxSubmitJobPerUserLimit"
    with pytest.raises(KeyboardInterrupt):
        time.sleep(5)
    stop.set()
    assert watch.fatal.endswith("no worker is connected: sbatch: error: "
                                "QOSMaxSubmitJobPerUserLimit")


def test_retries_stop_when_the_run_ends_and_only_refusals_are_retried():
    import asyncio

    calls = []

    class Refused:
        async def start(self):
            calls.append("refused")
            raise RuntimeError("Command exited with non-zero exit code.\nstderr:\nno")

    class Broken:
        async def start(self):
            calls.append("broken")
            raise ValueError("could not read the job id")  # may have queued a job: no retry

    watch = SubmissionWatch(retries=4, backoff_s=10.0)
    job = watch.job_class(Refused)()
    threading.Timer(0.3, watch.closing.set).start()  # the run ends during the first pause
    t0 = time.monotonic()
    with pytest.raises(RuntimeError):
        asyncio.run(job.start())
    assert time.monotonic() - t0 < 2 and calls == ["refused", "refused"]
    assert watch.failed == 1 and watch.last_error == "no"
    with pytest.raises(ValueError):
        asyncio.run(SubmissionWatch(retries=4, backoff_s=10.0).job_class(Broken)().start())
    assert calls[-1] == "broken" and calls.count("broken") == 1


def _run(tmp_path: Path, bin_dir: Path, store: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "DASK_HPC_NST__SUBMIT_BACKOFF": "0.2",
            "DASK_HPC_NST__SUBMIT_RETRIES": "2"}
    # SIGINT ignored, as for a driver started with `&` from a script: the watch's stop
    # (an interrupt of the main thread) must still reach it
    return subprocess.run(
        [sys.executable, "-m", "hpc_nst", "run", str(REPO / "manifests" / "demo.csv"), "-o",
         str(store), "--cluster", "slurm", "--gpus-per-worker", "0", "--memory", "1GB",
         "--interface", "lo", *TINY, *extra], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=120, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))


def test_a_refused_worker_job_is_one_error_before_any_store(tmp_path):
    bin_dir = _fake(tmp_path / "bin", "sbatch", "sbatch: error: Invalid account", "ok")
    store = tmp_path / "a.zarr"
    proc = _run(tmp_path, bin_dir, store, "--account", "nobody")
    assert proc.returncode == 2, proc.stderr
    assert "hpc-nst run: error: --cluster slurm: Slurm refuses the worker job (sbatch " \
           "--test-only): sbatch: error: Invalid account" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not store.exists()


def test_submissions_refused_during_the_run_stop_it_instead_of_waiting_forever(tmp_path):
    """The test submission passes, every real one is refused: the run used to wait with no
    worker for ever (dask-jobqueue never tries a failed job again)."""
    bin_dir = _fake(tmp_path / "bin", "sbatch", "ok",
                    "sbatch: error: QOSMaxSubmitJobPerUserLimit")
    store = tmp_path / "b.zarr"
    t0 = time.monotonic()
    proc = _run(tmp_path, bin_dir, store)
    assert time.monotonic() - t0 < 60, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert "worker job submission failed (try 1 of 3; again in 0 s): sbatch: error: " \
           "QOSMaxSubmitJobPerUserLimit" in proc.stderr
    assert "hpc-nst run: error: worker jobs could not be submitted (3 tries each) and no " \
           "worker is connected: sbatch: error: QOSMaxSubmitJobPerUserLimit; finished pairs " \
           "are saved" in proc.stderr
    assert "Traceback" not in proc.stderr  # tornado's and asyncio's: said once, on one line
    ds = xr.open_zarr(store)  # the store is intact, its pairs pending: a rerun resumes
    assert ds.sizes["pair"] == 2 and (ds.status.values == 0).all()
    assert not (store / LOCK_NAME).exists()
