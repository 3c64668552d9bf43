"""``hpc-nst run`` against the real single-node Slurm of ``slurm/dev-cluster.sh``.

Worker jobs are submitted by dask-jobqueue with ``--gres=gpu:1`` (the dev node has two
placeholder GPUs), from a driver that runs either here or itself as an sbatch job. The store
lives under pytest's tmp_path, which every job can reach because the cluster is one node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import xarray as xr

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "manifests" / "demo.csv"
TINY = ["iterations=3", "griffin_lim_iterations=2", "model=random", "width=4"]
#: The dev node has 2 CPUs and little memory: small worker jobs, on the loopback interface.
DEV = ["--cores", "1", "--memory", "1GB", "--interface", "lo", "--walltime", "00:10:00",
       "--progress-interval", "1"]


def _sets(items: list[str]) -> list[str]:
    return [x for s in items for x in ("--set", s)]


def _env(job_name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    env["DASK_CONFIG"] = str(REPO / "slurm")  # the shipped example jobqueue.yaml
    env["DASK_JOBQUEUE__SLURM__NAME"] = job_name  # tell this test's worker jobs apart
    return env


def _slurm(*cmd: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, f"{' '.join(cmd)}: {out.stderr}"
    return out.stdout


def _jobs(name: str, states: str = "all") -> list[str]:
    return _slurm("squeue", "-h", "-t", states, "-n", name, "-o", "%i").split()


def _run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 110):
    return subprocess.Popen([sys.executable, "-m", "hpc_nst", "run", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_job(job: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not _slurm("squeue", "-h", "-j", job, "-t", "PD,R,CG,S", "-o", "%T").strip():
            return
        time.sleep(1)
    _slurm("scancel", job)
    pytest.fail(f"job {job} did not finish within {timeout} s")


def test_demo_manifest_on_gpu_worker_jobs_then_rerun_skips(slurm_cluster, tmp_path):
    name = f"hpcnst-w-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "demo.zarr"
    args = [str(DEMO), "-o", str(store), "--cluster", "slurm", "--workers", "2",
            "--batch-size", "1", *DEV, *_sets(TINY)]
    proc = _run(args, tmp_path, _env(name))
    out, _ = proc.communicate(timeout=110)
    assert proc.returncode == 0, out
    assert "SLURMCluster" in out and "1 GPU each" in out and "2 done" in out
    jobs = _jobs(name)
    assert jobs, f"no worker jobs named {name}"
    for job in jobs:
        info = _slurm("scontrol", "show", "job", job)
        assert "gres:gpu:1" in info or "gres/gpu=1" in info, info
    ds = xr.open_zarr(store)
    assert sorted(ds.pair.values) == ["harp_fork", "voice_violin"]
    assert (ds.status.values == 1).all() and (ds.attempts.values == 1).all()
    # accounting: each pair names the worker job it ran in
    assert {str(j) for j in ds.scheduler_job.values} <= set(jobs), ds.scheduler_job.values
    assert (ds.device_s.values > 0).all() and (ds.peak_memory_mb.values > 0).all()
    for pid, content in (("harp_fork", "harp.flac"), ("voice_violin", "voice.flac")):
        n = sf.info(str(DEMO.parent / "demo" / content)).frames
        assert int(ds.samples.sel(pair=pid)) == n
        assert np.isfinite(ds.audio.sel(pair=pid).values[:n]).all()
    finished = ds.timings.sel(timing="finished_at").values.copy()

    # The same command again: nothing to do, no worker job submitted, nothing rewritten.
    proc = _run(args, tmp_path, _env(name))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "this run: 0 pairs" in out and "2 already done" in out
    assert sorted(_jobs(name)) == sorted(jobs)
    again = xr.open_zarr(store)
    np.testing.assert_array_equal(again.timings.sel(timing="finished_at").values, finished)
    np.testing.assert_array_equal(again.attempts.values, ds.attempts.values)


def test_a_partition_slurm_refuses_is_one_error_line_and_no_store(slurm_cluster, tmp_path):
    """It used to submit, fail in the background and wait for a worker for ever."""
    name = f"hpcnst-q-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "q.zarr"
    proc = _run([str(DEMO), "-o", str(store), "--cluster", "slurm", "--queue", "nosuch",
                 *DEV, *_sets(TINY)], tmp_path, _env(name))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "hpc-nst run: error: --cluster slurm: Slurm refuses the worker job (sbatch " \
           "--test-only): sbatch: error: invalid partition specified: nosuch" in out, out
    assert "Traceback" not in out and not store.exists()
    assert not _jobs(name)
    dry = subprocess.run([sys.executable, "-m", "hpc_nst", "run", str(DEMO), "-o", str(store),
                          "--cluster", "slurm", "--dry-run", *DEV], cwd=tmp_path,
                         env=_env(name), capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "scheduler check (slurm): sbatch: Job" in dry.stdout, dry.stdout
    assert not _jobs(name)


def test_cancelled_worker_job_loses_nothing(slurm_cluster, tmp_path):
    demo = DEMO.parent / "demo"
    files = ["harp.flac", "tuning_fork.flac", "voice.flac", "violin.flac"]
    rows = [f"p{i},{demo / c},{demo / s}" for i, (c, s) in
            enumerate((c, s) for c in files for s in files if c != s)][:8]
    manifest = tmp_path / "m.csv"
    manifest.write_text("pair_id,content,style\n" + "\n".join(rows) + "\n")
    name = f"hpcnst-c-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "c.zarr"
    args = [str(manifest), "-o", str(store), "--cluster", "slurm", "--workers", "2",
            "--min-workers", "2", "--batch-size", "1", *DEV,
            *_sets(["iterations=25", "griffin_lim_iterations=2", "model=random", "width=4"])]
    proc = _run(args, tmp_path, _env(name))
    deadline = time.time() + 90
    cancelled = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
        if not (store / "zarr.json").exists():
            continue
        status = xr.open_zarr(store).status.values
        running = _jobs(name, "R")
        if (status == 1).sum() >= 1 and (status == 0).sum() >= 3 and running:
            cancelled = running[0]
            _slurm("scancel", cancelled)
            break
    assert cancelled, "never saw a running worker job with work left"
    out, _ = proc.communicate(timeout=110)
    assert proc.returncode == 0, out
    assert "8 done" in out and "0 failed" in out
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).all() and (ds.records.values == 26).all()
    # COMPLETING is Slurm's transient state while a cancelled job's processes are reaped
    settle = time.time() + 60
    while True:
        state = _slurm("squeue", "-h", "-t", "all", "-j", cancelled, "-o", "%T").strip()
        if state != "COMPLETING" or time.time() > settle:
            break
        time.sleep(1)
    assert state in ("CANCELLED", ""), state


def _sbatch_driver(tmp_path: Path, name: str, python: str, *args: str) -> str:
    """Submit slurm/run.sbatch with ``args``; returns the job id."""
    return _slurm(
        "sbatch", "--parsable", f"--chdir={tmp_path}", "--cpus-per-task=1", "--mem=1G",
        "--time=10", f"--output={tmp_path}/driver-%j.out",
        f"--export=ALL,DASK_CONFIG={REPO}/slurm,DASK_JOBQUEUE__SLURM__NAME={name},"
        f"HPC_NST_PYTHON={python}", str(REPO / "slurm" / "run.sbatch"), *args,
    ).strip().split(";")[0]


def test_sbatch_driver_end_to_end(slurm_cluster, tmp_path):
    name = f"hpcnst-s-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "sb.zarr"
    # a launcher of several words (as "apptainer exec --nv img.sif python" would be), used by
    # the driver job and, through dask-jobqueue, by its worker jobs
    job = _sbatch_driver(
        tmp_path, name, f"{sys.executable} -X utf8", str(DEMO), str(store),
        str(REPO / "jobs" / "paper.toml"),
        "--workers", "1", "--batch-size", "1", *DEV, *_sets(TINY),
    )
    _wait_job(job, 110)
    log = (tmp_path / f"driver-{job}.out").read_text()
    assert "exit code 0" in log, log
    assert f"+ {sys.executable} -X utf8 -m hpc_nst run" in log
    assert "scrubbed" in log and "SLURM_*/SBATCH_*" in log  # nothing leaked into worker jobs
    assert _jobs(name), "the driver job submitted no worker job"
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).all() and ds.sizes["pair"] == 2


def test_everything_in_one_allocation(slurm_cluster, tmp_path):
    store = tmp_path / "alloc.zarr"
    job = _slurm(
        "sbatch", "--parsable", f"--chdir={tmp_path}", "--ntasks=3", "--overcommit",
        "--cpus-per-task=1", "--mem=3G", "--gres=gpu:1", "--time=5",
        f"--output={tmp_path}/alloc-%j.out", f"--export=ALL,HPC_NST_PYTHON={sys.executable}",
        str(REPO / "slurm" / "run-in-allocation.sbatch"), str(DEMO), str(store),
        "--batch-size", "1", "--progress-interval", "1", *_sets(TINY),
    ).strip().split(";")[0]
    _wait_job(job, 110)
    log = (tmp_path / f"alloc-{job}.out").read_text()
    assert "SLURMRunner: 1 worker rank(s)" in log and "2 done" in log, log
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).all()


def _pairs_manifest(tmp_path: Path, n: int = 8) -> Path:
    demo = DEMO.parent / "demo"
    files = ["harp.flac", "tuning_fork.flac", "voice.flac", "violin.flac"]
    rows = [f"p{i},{demo / c},{demo / s}" for i, (c, s) in
            enumerate((c, s) for c in files for s in files if c != s)][:n]
    manifest = tmp_path / "m.csv"
    manifest.write_text("pair_id,content,style\n" + "\n".join(rows) + "\n")
    return manifest


PREEMPT_SETS = ["iterations=40", "griffin_lim_iterations=2", "model=random", "width=4"]


def test_worker_requeued_and_signalled_lose_nothing(slurm_cluster, tmp_path):
    """`scontrol requeue` one worker job and SIGUSR1 (the walltime warning) another mid-run:
    every pair ends done, bit-identical to an undisturbed local run; the signalled worker
    finished its task before leaving."""
    manifest = _pairs_manifest(tmp_path)
    name = f"hpcnst-p-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "p.zarr"
    args = [str(manifest), "-o", str(store), "--cluster", "slurm", "--workers", "2",
            "--min-workers", "2", "--batch-size", "1", *DEV, *_sets(PREEMPT_SETS)]
    proc = _run(args, tmp_path, _env(name))
    deadline = time.time() + 100
    requeued = signalled = None
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if not (store / "zarr.json").exists():
            continue
        status = xr.open_zarr(store).status.values
        running = _jobs(name, "R")
        if (status == 1).sum() >= 1 and (status == 0).sum() >= 4 and len(running) >= 2:
            requeued, signalled = running[:2]
            _slurm("scancel", "--batch", "--signal=USR1", signalled)
            _slurm("scontrol", "requeue", requeued)
            break
    assert requeued, "never saw two running worker jobs with work left"
    out, _ = proc.communicate(timeout=150)
    assert proc.returncode == 0, out
    assert "8 done" in out and "0 failed" in out
    # worker job logs: log-directory of slurm/jobqueue.yaml, <job name>-<job id>.err
    worker_log = next((tmp_path / "logs").rglob(f"*-{signalled}.err")).read_text()
    assert "got SIGUSR1: finishing" in worker_log and "leaves after SIGUSR1" in worker_log
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).all()
    # The same pairs undisturbed, on a local cluster with one torch thread per worker like the
    # worker jobs (--cores 1): the same bits.
    ref = tmp_path / "ref.zarr"
    local = _run([str(manifest), "-o", str(ref), "--workers", "2", "--batch-size", "1",
                  "--progress-interval", "1", *_sets(PREEMPT_SETS)], tmp_path, _env(name))
    out, _ = local.communicate(timeout=150)
    assert local.returncode == 0, out
    want = xr.open_zarr(ref)
    for pid in ds.pair.values:
        np.testing.assert_array_equal(ds.audio.sel(pair=pid).values,
                                      want.audio.sel(pair=pid).values)


def test_driver_signalled_before_its_limit_requeues_and_resumes(slurm_cluster, tmp_path):
    manifest = _pairs_manifest(tmp_path)
    name = f"hpcnst-d-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "d.zarr"
    job = _sbatch_driver(tmp_path, name, sys.executable, str(manifest), str(store),
                         "--workers", "1", "--batch-size", "1", *DEV, *_sets(PREEMPT_SETS))
    deadline = time.time() + 90
    sent = False
    while time.time() < deadline:
        time.sleep(0.3)
        if (store / "zarr.json").exists() and (xr.open_zarr(store).status.values == 1).sum():
            _slurm("scancel", "--batch", "--signal=USR1", job)
            sent = True
            break
    assert sent, "the driver never got a pair done"
    log = tmp_path / f"driver-{job}.out"
    deadline = time.time() + 150
    released = False
    while time.time() < deadline and log.read_text().count("exit code") < 2:
        if not released and f"requeued job {job}" in log.read_text():
            time.sleep(1)  # Slurm holds a requeued job a while (BeginTime): start it now
            _slurm("scontrol", "update", f"jobid={job}", "StartTime=now")
            released = True
        time.sleep(1)
    text = log.read_text()
    assert "SIGUSR1 (time limit near): saving and requeueing" in text, text
    assert "waiting up to 60 s" in text, text  # the whole grace (a SIGTERM's would be 2 s)
    assert f"requeued job {job}" in text
    assert "exit code 143" in text and "exit code 0" in text, text
    _wait_job(job, 60)
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).all() and ds.sizes["pair"] == 8


def test_a_plain_scancel_of_the_driver_saves_and_stops_before_slurm_kills_it(slurm_cluster,
                                                                           tmp_path):
    """`scancel JOB` sends SIGTERM and SIGKILL after KillWait (5 s on the dev cluster, 30 by
    default): the driver's 60 s grace outlived it, so it was killed mid-wait (no summary, no
    exit code, the lock left). Inside a Slurm job the default grace is now under KillWait."""
    manifest = _pairs_manifest(tmp_path)
    name = f"hpcnst-k-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "k.zarr"
    job = _sbatch_driver(tmp_path, name, sys.executable, str(manifest), str(store),
                         "--workers", "1", "--batch-size", "1", *DEV,
                         *_sets(["iterations=400", *PREEMPT_SETS[1:]]))
    deadline = time.time() + 90
    while time.time() < deadline:
        time.sleep(0.3)
        if (store / "zarr.json").exists() and (xr.open_zarr(store).status.values == 1).sum():
            break
    else:
        _slurm("scancel", job)
        pytest.fail("the driver never got a pair done")
    _slurm("scancel", job)
    _wait_job(job, 60)
    text = (tmp_path / f"driver-{job}.out").read_text()
    assert "grace 2 s for the tasks in hand on SIGTERM (Slurm's KillWait is 5 s" in text, text
    assert "exit code 143" in text and "interrupted" in text, text
    assert not (store / ".hpc_nst.lock").exists(), text
    deadline = time.time() + 30  # the driver cancelled its worker jobs on the way out
    while time.time() < deadline and _jobs(name, "PD,R"):
        time.sleep(1)
    assert not _jobs(name, "PD,R")


def test_worker_jobs_past_their_walltime_lose_nothing(slurm_cluster, tmp_path):
    """Worker jobs with a one-minute walltime and no warning that reaches the worker
    (``--signal=USR1@1`` without ``B:`` goes to job steps, and the worker runs as the batch
    shell): Slurm kills them mid-task (state TIMEOUT); the adaptive
    cluster submits new ones and every pair ends done exactly once, with a store that
    verifies. Takes about four to six minutes (Slurm enforces limits every 30 s)."""
    from hpc_nst.batch.verify import verify_store

    manifest = _pairs_manifest(tmp_path, n=12)
    name = f"hpcnst-t-{uuid.uuid4().hex[:6]}"
    store = tmp_path / "t.zarr"
    dev = [*DEV[: DEV.index("--walltime")], *DEV[DEV.index("--walltime") + 2:]]
    slow = ["iterations=3000", "griffin_lim_iterations=2", "model=random", "width=4"]
    # ~35 s per pair on one core (2026-12-06; 2000 iterations once took 29 s, then 20 s, and
    # eight pairs could finish inside the minute plus Slurm's 30 s enforcement slack; on an
    # AVX-512 VM, 2026-12-07, eight pairs of 3000 did): 12 pairs outlast one-minute worker
    # jobs, while each pair still fits in one
    args = [str(manifest), "-o", str(store), "--cluster", "slurm", "--workers", "2",
            "--min-workers", "2", "--batch-size", "1", *dev, "--walltime", "00:01:00",
            "--job-extra=--signal=USR1@1", "--progress-interval", "10",
            *_sets(slow)]
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:  # a file, not a pipe nobody reads while we poll
        proc = subprocess.Popen([sys.executable, "-m", "hpc_nst", "run", *args], cwd=tmp_path,
                                env=_env(name), stdout=fh, stderr=subprocess.STDOUT, text=True)
        # Slurm forgets finished jobs after MinJobAge (60 s on the dev cluster): watch the
        # states while the run goes on.
        seen: dict[str, str] = {}
        deadline = time.time() + 420
        while proc.poll() is None and time.time() < deadline:
            for line in _slurm("squeue", "-h", "-t", "all", "-n", name, "-o", "%i %T").split("\n"):
                if line.strip():
                    job, state = line.split()
                    seen[job] = state if seen.get(job) != "TIMEOUT" else "TIMEOUT"
            time.sleep(2)
        proc.wait(timeout=30)
    out = log.read_text()
    assert proc.returncode == 0, out
    assert "12 done" in out and "0 failed" in out, out
    timed_out = [job for job, state in seen.items() if state == "TIMEOUT"]
    assert timed_out, seen
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).all() and (ds.records.values == 3001).all()
    assert ds.attempts.values.max() >= 2, ds.attempts.values  # a task cut off ran again
    assert len(set(ds.scheduler_job.values.tolist())) >= 3  # pairs done by replacement jobs
    assert verify_store(store).ok
    # A pair whose task was cut off, run undisturbed (one torch thread, as --cores 1): the
    # same bits.
    cut = str(ds.pair.values[int(np.argmax(ds.attempts.values))])
    row = next(r for r in manifest.read_text().splitlines() if r.startswith(f"{cut},"))
    one = tmp_path / "one.csv"
    one.write_text(f"pair_id,content,style\n{row}\n")
    ref = _run([str(one), "-o", str(tmp_path / "ref.zarr"), "--workers", "2", "--quiet",
                *_sets(slow)], tmp_path, _env(name))
    out, _ = ref.communicate(timeout=150)
    assert ref.returncode == 0, out
    np.testing.assert_array_equal(ds.audio.sel(pair=cut).values,
                                  xr.open_zarr(tmp_path / "ref.zarr").audio.sel(pair=cut).values)
