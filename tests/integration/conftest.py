"""Fixtures for integration tests that need a real batch system.

`slurm_cluster` checks that a Slurm controller answers and has a usable node; otherwise the test is
skipped, or failed when HPC_NST_REQUIRE_SLURM=1 (as in CI, where `.ci/run` starts the throwaway
cluster with `bash slurm/dev-cluster.sh up`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

NO_SLURM = "no Slurm cluster: run `bash slurm/dev-cluster.sh up` as root"
USABLE_STATES = {"idle", "mix"}  # sinfo %t: nodes that can start a job now


@dataclass(frozen=True)
class SlurmInfo:
    """What the tests learn about the cluster they run against."""

    nodes: dict[str, str]  # node name -> compact state (idle, mix, ...)
    partition: str  # the default partition


def slurm_env() -> dict[str, str]:
    """os.environ without SLURM_*/SBATCH_* variables, so that a test running inside a Slurm job
    does not leak its own job's settings into the jobs it submits."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}


def _probe() -> tuple[SlurmInfo | None, str]:
    if shutil.which("sinfo") is None:
        return None, "sinfo not found"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%N %t %P"],
            capture_output=True,
            text=True,
            timeout=20,
            env=slurm_env(),
        )
    except subprocess.TimeoutExpired:
        return None, "sinfo timed out"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"sinfo failed: {last}"
    nodes: dict[str, str] = {}
    partition = ""
    for line in proc.stdout.splitlines():
        name, state, part = line.split()
        nodes[name] = state
        if part.endswith("*"):  # sinfo marks the default partition with '*'
            partition = part.rstrip("*")
    if not any(state in USABLE_STATES for state in nodes.values()):
        return None, f"no idle or mixed node (sinfo: {nodes or 'no nodes'})"
    return SlurmInfo(nodes=nodes, partition=partition), ""


@pytest.fixture(scope="session")
def slurm_cluster() -> SlurmInfo:
    """A Slurm cluster with an idle/mixed node; else skip (fail if HPC_NST_REQUIRE_SLURM=1)."""
    info, why = _probe()
    if info is None:
        msg = f"{NO_SLURM} ({why})"
        if os.environ.get("HPC_NST_REQUIRE_SLURM") == "1":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return info
