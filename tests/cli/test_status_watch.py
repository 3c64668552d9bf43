"""``hpc-nst status --watch``: refreshes while a driver runs, stops when the batch ends."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import soundfile as sf

from hpc_nst.batch.store import LOCK_NAME
from hpc_nst.cli import main
from tests.batch.conftest import SR, tone

pytestmark = pytest.mark.slow


def test_watch_follows_a_run_to_its_end(tmp_path):
    for i in range(3):
        sf.write(tmp_path / f"x{i}.wav", tone(220 * (i + 1), 0.5), SR)
    rows = [f"p{i}{j},x{i}.wav,x{j}.wav" for i in range(3) for j in range(3) if i != j]
    (tmp_path / "m.csv").write_text("pair_id,content,style\n" + "\n".join(rows) + "\n")
    store = tmp_path / "w.zarr"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "hpc_nst", "status", str(store), "--watch", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    driver = subprocess.run(
        [sys.executable, "-m", "hpc_nst", "run", str(tmp_path / "m.csv"), "-o", str(store),
         "--workers", "1", "--batch-size", "1", "--progress-interval", "0",
         "--set", "iterations=20", "--set", "griffin_lim_iterations=2", "--set", "width=4"],
        capture_output=True, text=True, timeout=240, env=env)
    assert driver.returncode == 0, driver.stderr
    out, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, out
    assert "waiting for" in out and out.rstrip().endswith("batch finished")
    updates = [line for line in out.splitlines() if "pending," in line and "| ETA" in line]
    assert len(updates) >= 2, out
    assert "6/6 done, 0 pending, 0 failed" in updates[-1]
    assert any("driver running" in u for u in updates[:-1]), out


def test_watch_stops_when_the_driver_is_gone(tmp_path, capsys):
    sf.write(tmp_path / "a.wav", tone(220, 0.5), SR)
    (tmp_path / "m.csv").write_text("content,style\na.wav,a.wav\n")
    store = tmp_path / "s.zarr"
    assert main(["run", str(tmp_path / "m.csv"), "-o", str(store), "--workers", "1",
                 "--progress-interval", "0", "--set", "method=content-copy"]) == 0
    assert main(["status", str(store), "--watch", "0.1"]) == 0
    assert "batch finished" in capsys.readouterr().out
    # A pending pair and no driver (no lock, last run ended): say so, exit 1, do not hang.
    import zarr

    root = zarr.open_group(str(store), mode="r+")
    root["status"][0] = 0
    assert not (store / LOCK_NAME).exists()
    assert main(["status", str(store), "--watch", "0.1", "--grace", "0"]) == 1
    assert "the driver is gone with pairs pending" in capsys.readouterr().out
    assert main(["status", str(store), "--watch", "0"]) == 2
