"""The shipped sbatch scripts run outside Slurm too (bash), with a multi-word HPC_NST_PYTHON."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from .conftest import TINY

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_run_sbatch_takes_a_launcher_of_several_words(tmp_path):
    store = tmp_path / "demo.zarr"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_"))}
    # "python -X utf8": a launcher with options, like "apptainer exec --nv img.sif python".
    env["HPC_NST_PYTHON"] = f"{sys.executable} -X utf8"
    env["HPC_NST_SETUP"] = "export HPC_NST_SETUP_RAN=yes"
    out = subprocess.run(
        ["bash", str(REPO / "slurm" / "run.sbatch"), str(REPO / "manifests" / "demo.csv"),
         str(store), str(REPO / "jobs" / "paper.toml"), "--cluster", "local", "--workers", "1",
         "--progress-interval", "0", *[x for s in TINY for x in ("--set", s)]],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"+ {sys.executable} -X utf8 -m hpc_nst run" in out.stdout
    assert "exit code 0" in out.stdout
    assert (xr.open_zarr(store).status.values == 1).all()
