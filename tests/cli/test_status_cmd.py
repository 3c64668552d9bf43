"""``hpc-nst status`` (valid JSON for per-pair methods; a queued Slurm driver and the grace
period of ``--watch``), ``verify`` of a missing store, and a closed stdout pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from hpc_nst.batch.store import LOCK_NAME
from hpc_nst.cli import main
from hpc_nst.cli import status_cmd as sc
from tests.batch.conftest import SR, tone
from tests.integration.conftest import slurm_cluster  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def copy_store(tmp_path_factory) -> Path:
    """A finished store of the per-pair method content-copy (no optimisation timings)."""
    d = tmp_path_factory.mktemp("status")
    for i in range(2):
        sf.write(d / f"x{i}.wav", tone(220 * (i + 1), 0.5), SR)
    (d / "m.csv").write_text("content,style\nx0.wav,x1.wav\nx1.wav,x0.wav\n")
    store = d / "s.zarr"
    assert main(["run", str(d / "m.csv"), "-o", str(store), "--workers", "1", "--quiet",
                 "--set", "method=content-copy"]) == 0
    return store


def _with_pending(store: Path, tmp_path: Path) -> Path:
    """A copy of ``store`` with its first pair pending again, and no driver."""
    import shutil

    import zarr

    copy = tmp_path / store.name
    shutil.copytree(store, copy)
    zarr.open_group(str(copy), mode="r+")["status"][0] = 0
    assert not (copy / LOCK_NAME).exists()
    return copy


def _strict(text: str):  # noqa: ANN202
    def refuse(name: str):  # noqa: ANN202
        raise ValueError(f"invalid JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_json_of_a_per_pair_method_is_valid_json(copy_store, capsys):
    assert main(["status", str(copy_store), "--json"]) == 0
    info = _strict(capsys.readouterr().out)  # NaN would be refused here
    assert info["method"] == "content-copy" and info["done"] == 2
    median = info["compute_s_per_batch_median"]
    assert median is None or median >= 0
    assert main(["status", str(copy_store)]) == 0
    assert "nan" not in capsys.readouterr().out.lower()


def test_finite_replaces_nan_and_inf_with_none():
    assert sc.finite({"a": float("nan"), "b": [1.0, float("inf")], "c": "x", "d": 2}) == \
        {"a": None, "b": [1.0, None], "c": "x", "d": 2}


def test_compute_per_batch_ignores_stages_a_method_has_not():
    import numpy as np

    nan = np.nan
    t = {"features_s": np.array([0.5, nan, nan]), "optimise_s": np.array([nan, nan, 2.0]),
         "griffin_lim_s": np.array([0.25, nan, 1.0])}
    got = sc._compute_per_batch(t)
    assert got[0] == 0.75 and np.isnan(got[1]) and got[2] == 3.0


def test_queued_driver_matches_the_store_named_in_the_job_command(tmp_path, monkeypatch):
    store = tmp_path / "demo.zarr"
    other = tmp_path / "other.zarr"
    lines = [f"7|PENDING|hpc-nst-driver|{tmp_path}|/x/slurm/run.sbatch m.csv other.zarr",
             f"8|PENDING|hpc-nst-driver|{tmp_path}|/x/slurm/run.sbatch m.csv demo.zarr "
             "jobs/eq.toml --workers 4"]
    monkeypatch.setattr(sc, "_squeue", lambda: lines)
    assert sc.queued_driver(store) == "Slurm job 8 (hpc-nst-driver) PENDING"
    assert sc.queued_driver(other).startswith("Slurm job 7 ")
    # an absolute path, from any working directory, and --output=STORE
    monkeypatch.setattr(sc, "_squeue", lambda: [
        f"9|RUNNING|mine|/elsewhere|job.sh --output={store}/"])
    assert sc.queued_driver(store) == "Slurm job 9 (mine) RUNNING"
    assert sc.queued_driver(other) is None
    # a driver job whose command squeue cannot show (sbatch --wrap) counts for any store
    monkeypatch.setattr(sc, "_squeue", lambda: [f"10|PENDING|hpc-nst-driver|{tmp_path}|(null)",
                                                f"11|PENDING|other-job|{tmp_path}|(null)"])
    assert "Slurm job 10" in sc.queued_driver(store) and "any hpc-nst driver job" in \
        sc.queued_driver(store)
    # Slurm 23.02 on shows the script without its arguments: a driver job counts as such
    monkeypatch.setattr(sc, "_squeue", lambda: [
        f"12|PENDING|hpc-nst-driver|{tmp_path}|/x/slurm/run.sbatch",
        f"13|PENDING|other-job|{tmp_path}|/x/other.sh"])
    assert sc.queued_driver(store).startswith("Slurm job 12 (hpc-nst-driver) PENDING; its "
                                              "arguments are not shown")
    # the job this runs in (srun hpc-nst status ... --watch) never counts
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    assert sc.queued_driver(store) is None
    monkeypatch.delenv("SLURM_JOB_ID")
    for nothing in (None, []):
        monkeypatch.setattr(sc, "_squeue", lambda nothing=nothing: nothing)
        assert sc.queued_driver(store) is None


def test_watch_ends_when_every_pair_is_done_whatever_squeue_shows(copy_store, capsys,
                                                                  monkeypatch):
    """A job that only looks like a driver (another batch's, with no arguments shown) must
    not keep a finished batch's watch running."""
    monkeypatch.setattr(sc, "_squeue", lambda: ["5|PENDING|hpc-nst-driver|/w|(null)"])
    assert main(["status", str(copy_store), "--watch", "0.05", "--grace", "0"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("batch finished")


def test_watch_waits_for_a_queued_driver_then_reports_it_gone(copy_store, tmp_path, capsys,
                                                              monkeypatch):
    """Right after ``sbatch`` the driver job is pending in squeue and the store has no lock:
    --watch keeps watching while squeue shows the job, and stops once it is gone."""
    store = _with_pending(copy_store, tmp_path)
    polls = []

    def squeue():  # noqa: ANN202
        polls.append(1)
        return ([f"42|PENDING|hpc-nst-driver|{tmp_path}|run.sbatch m.csv {store.name}"]
                if len(polls) <= 3 else [])

    monkeypatch.setattr(sc, "_squeue", squeue)
    assert main(["status", str(store), "--watch", "0.05", "--grace", "0"]) == 1
    out = capsys.readouterr().out
    assert len(polls) == 4
    assert out.count("driver: Slurm job 42 (hpc-nst-driver) PENDING") == 3
    assert out.rstrip().endswith("the driver is gone with pairs pending: rerun hpc-nst run "
                                 "to resume")


def test_watch_waits_a_grace_period_for_a_driver_to_appear(copy_store, tmp_path, capsys,
                                                           monkeypatch):
    store = _with_pending(copy_store, tmp_path)
    monkeypatch.setattr(sc, "_squeue", lambda: None)  # no Slurm here
    # (1.5 s: the first poll alone takes 0.4 s where pandas is not imported yet, as when this
    # test runs by itself)
    assert main(["status", str(store), "--watch", "0.1", "--grace", "1.5"]) == 1
    out = capsys.readouterr().out
    assert "no driver yet (waiting up to" in out
    assert out.count("| ETA") >= 3
    assert "the driver is gone with pairs pending" in out
    assert main(["status", str(store), "--watch", "0.1", "--grace", "-1"]) == 2
    # every pair done: no grace needed, the batch is finished at once
    assert main(["status", str(copy_store), "--watch", "0.1", "--grace", "60"]) == 0
    assert "batch finished" in capsys.readouterr().out


def test_verify_of_a_missing_store_is_one_line_exit_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "nope.zarr")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == f"hpc-nst verify: error: {tmp_path / 'nope.zarr'}: store " \
        "not found"


@pytest.mark.parametrize("extra", [[], ["--json"]])
def test_a_closed_stdout_pipe_ends_quietly(copy_store, extra):
    """``hpc-nst status STORE | head -1``: the reader is gone when the command writes; no
    BrokenPipeError traceback (also none when Python flushes stdout at exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "hpc_nst", "status", str(copy_store),
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdout.close()  # long before the command (seconds of imports) writes anything
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == "", err


def test_main_returns_141_on_a_broken_pipe(monkeypatch, capsys):
    def boom(args):  # noqa: ANN001, ANN202
        raise BrokenPipeError(32, "Broken pipe")

    import argparse

    parser = argparse.ArgumentParser()
    parser.set_defaults(func=boom, command="status", verbose=0, log_file=None)
    monkeypatch.setattr("hpc_nst.cli.build_parser", lambda: parser)
    assert main([]) == 141
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slurm
@pytest.mark.usefixtures("slurm_cluster")  # skipped without Slurm (failed in CI, which has it)
def test_watch_follows_a_driver_job_pending_in_real_slurm(copy_store, tmp_path):
    """``sbatch slurm/run.sbatch MANIFEST STORE`` resuming a store, then ``status --watch``:
    while the driver job is pending (held here, so it never starts) the watch goes on; once
    the job is cancelled, the driver is gone (at once: a driver was seen, so no grace
    period applies)."""
    import time

    from tests.integration.conftest import slurm_env

    store = _with_pending(copy_store, tmp_path)
    env = slurm_env()
    sub = subprocess.run(["sbatch", "--hold", "--parsable", "--chdir", str(tmp_path),
                          str(ROOT / "slurm" / "run.sbatch"), "m.csv", store.name],
                         capture_output=True, text=True, timeout=30, env=env)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    try:
        watcher = subprocess.Popen(
            [sys.executable, "-m", "hpc_nst", "status", str(store), "--watch", "0.3"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**env, "PYTHONUNBUFFERED": "1"})
        time.sleep(6)
        alive = watcher.poll() is None
    finally:
        subprocess.run(["scancel", job], timeout=30, env=env)
    out, _ = watcher.communicate(timeout=60)
    assert alive, out
    assert f"driver: Slurm job {job} (hpc-nst-driver) PENDING" in out
    assert watcher.returncode == 1, out
    assert out.rstrip().endswith("the driver is gone with pairs pending: rerun hpc-nst run to "
                                 "resume")


def test_a_run_s_history_keeps_what_it_finished_after_a_pair_is_reset(copy_store, tmp_path,
                                                                     capsys):
    """Each run line was counted again from the pairs' state: after verify --repair reset a
    pair, an earlier run "finished" fewer pairs than it did."""
    copy = _with_pending(copy_store, tmp_path)
    assert main(["status", str(copy), "--json"]) == 0
    runs = _strict(capsys.readouterr().out)["runs"]
    assert [r["pairs_done"] for r in runs] == [2]
