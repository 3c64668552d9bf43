"""The driver killed (SIGKILL) or stopped (SIGTERM) mid-run: the rerun resumes, nothing done is
redone, the store verifies, and the outputs are the bits of an undisturbed run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

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
            "--progress-interval", "0", *SETS]


def _start_and_stop(manifest, store, sig: int) -> subprocess.Popen:
    """Start a driver in its own process group; send ``sig`` once a pair is done."""
    proc = subprocess.Popen([sys.executable, "-m", "hpc_nst", *_args(manifest, store)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        if (store / "zarr.json").exists() and (xr.open_zarr(store).status.values == 1).any():
            break
    assert proc.poll() is None, proc.communicate()[0]
    if sig == signal.SIGKILL:  # the driver and its local workers, as a node failure would
        os.killpg(proc.pid, signal.SIGKILL)
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


def test_driver_sigterm_saves_releases_the_lock_and_says_so(tmp_path):
    manifest = _manifest(tmp_path)
    store = tmp_path / "t.zarr"
    proc = _start_and_stop(manifest, store, signal.SIGTERM)
    out = proc.communicate()[0]
    assert proc.returncode == 130, out
    assert "interrupted: finished pairs are saved; rerun the same command to resume" in out
    assert not (store / LOCK_NAME).exists()
    ds = xr.open_zarr(store)
    assert (ds.status.values == 1).sum() >= 1
    assert main(["verify", str(store)]) == 0
    assert main(_args(manifest, store)) == 0
