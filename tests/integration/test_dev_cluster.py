"""The Slurm cluster the integration tests run against accepts, runs and cancels GPU jobs.

Against the throwaway cluster of `slurm/dev-cluster.sh` (one node, two placeholder GPUs); the job
directories are pytest's tmp_path, which works because that cluster is a single node.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

FINISHED = {
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}


def slurm_env() -> dict[str, str]:
    """os.environ without SLURM_*/SBATCH_*, so a test run inside a Slurm job leaks nothing."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}


def _run(*cmd: str) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=slurm_env())
    assert proc.returncode == 0, f"{' '.join(cmd)} failed: {proc.stderr.strip()}"
    return proc.stdout


def sbatch(workdir: Path, script: str, *options: str) -> str:
    """Submit `script` (run by sh) with working directory `workdir`; return the job id."""
    out = _run(
        "sbatch",
        "--parsable",
        "--job-name=hpc-nst-test",
        "--time=5",
        f"--chdir={workdir}",
        f"--output={workdir}/slurm-%j.out",
        *options,
        "--wrap",
        script,
    )
    return out.strip().split(";")[0]


def job_state(job_id: str) -> str:
    """The job's state (RUNNING, COMPLETED, ...), or "" once Slurm has forgotten the job."""
    proc = subprocess.run(
        ["scontrol", "-o", "show", "job", job_id],
        capture_output=True,
        text=True,
        timeout=30,
        env=slurm_env(),
    )
    for field in proc.stdout.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return ""


def in_queue(job_id: str) -> bool:
    """Whether squeue still lists the job (pending, running or completing)."""
    proc = subprocess.run(
        ["squeue", "-h", "-j", job_id, "-o", "%i"],
        capture_output=True,
        text=True,
        timeout=30,
        env=slurm_env(),
    )
    return job_id in proc.stdout.split()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def test_gpu_job_runs_and_writes_file(slurm_cluster, tmp_path):
    token = uuid.uuid4().hex
    result = tmp_path / "result.txt"
    job_id = sbatch(
        tmp_path,
        f'echo "{token} gpus=$SLURM_GPUS_ON_NODE" > {result}',
        "--gres=gpu:1",
    )
    try:
        wait_for(lambda: job_state(job_id) in FINISHED | {""}, 120, f"job {job_id} to finish")
        state = job_state(job_id)
        out = tmp_path / f"slurm-{job_id}.out"
        log = out.read_text(errors="replace") if out.exists() else ""
        assert state in ("COMPLETED", ""), f"job {job_id} ended {state}; output:\n{log}"
        assert result.read_text().strip() == f"{token} gpus=1"
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, env=slurm_env())


def test_scancel_removes_sleeping_job(slurm_cluster, tmp_path):
    job_id = sbatch(tmp_path, "sleep 600")
    try:
        wait_for(lambda: job_state(job_id) == "RUNNING", 60, f"job {job_id} to start")
        assert in_queue(job_id)
        _run("scancel", job_id)
        wait_for(lambda: not in_queue(job_id), 60, f"job {job_id} to leave the queue")
        assert job_state(job_id) in ("CANCELLED", "")
    finally:
        subprocess.run(["scancel", job_id], capture_output=True, env=slurm_env())
