"""Store faults: a worker killed between writing its arrays and the driver recording them, a
read-only store, a store that disappears mid-run."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from hpc_nst.batch import record as record_mod
from hpc_nst.batch import store as st
from hpc_nst.batch import worker as worker_mod
from hpc_nst.batch.runner import RunOptions, run_batch
from hpc_nst.batch.verify import verify_store
from hpc_nst.cli import main
from hpc_nst.errors import StoreError, StoreGoneError

from .conftest import write_csv

pytestmark = pytest.mark.slow

PAIRS = ["p1,a.wav,b.wav", "p2,b.wav,c.wav", "p3,c.wav,d.wav", "p4,d.wav,a.wav"]


def _opts(**kw) -> RunOptions:  # noqa: ANN003
    return RunOptions(batch_size=1, batches_per_task=1, progress_interval=0, quiet=True,
                      **kw)


@pytest.fixture
def threads_client():
    """Workers in this process (threads), so that the writer can be wrapped."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def _die_after_first_write(marker: str) -> None:
    """Run on each worker process: the first task anywhere to write its arrays then kills
    its own process before returning (before the driver can record anything)."""
    from hpc_nst.batch import worker

    real = worker.write_task_data

    def write_then_die(spec, results):  # noqa: ANN001, ANN202
        out = real(spec, results)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return out
        os._exit(1)

    worker.write_task_data = write_then_die


def test_worker_killed_between_writing_and_recording(tmp_path, audio_dir, tiny):
    """The pair reads pending until its rerun is recorded; it ends done once, bit-identical
    to an undisturbed run, and the store verifies."""
    from distributed import Client, LocalCluster

    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", PAIRS)
    marker = tmp_path / "killed"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        calm = run_batch(manifest, tmp_path / "calm.zarr", tiny, _opts(), client=client)
        client.run(_die_after_first_write, str(marker))
        hit = run_batch(manifest, tmp_path / "hit.zarr", tiny, _opts(), client=client)
    assert marker.exists(), "no worker was killed"
    assert (calm.done, hit.done, hit.failed, hit.pending) == (4, 4, 0, 0)
    a, b = xr.open_zarr(tmp_path / "calm.zarr"), xr.open_zarr(tmp_path / "hit.zarr")
    assert (b.status.values == st.DONE).all()
    # the killed task ran again (a task queued on the dead worker also counts a second try)
    assert b.attempts.values.max() == 2 and b.attempts.values.min() == 1
    for name in ("audio", "spectrogram", "loss", "checksum"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert verify_store(tmp_path / "hit.zarr").ok


@pytest.fixture
def read_only(tmp_path):
    """A directory that cannot be written even by root: a read-only bind mount when we may
    mount, else permission bits (enough for other users)."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    mounted = False

    def freeze() -> Path:
        nonlocal mounted
        if os.geteuid() == 0:
            ok = subprocess.run(["mount", "--bind", str(src), str(ro)]).returncode == 0 and \
                subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)]).returncode == 0
            mounted = ok or subprocess.run(["umount", str(ro)]).returncode != 0
            assert ok, "root here but cannot bind-mount read-only"
            return ro
        for dirpath, dirnames, filenames in os.walk(src):
            for n in [*dirnames, *filenames, "."]:
                p = Path(dirpath, n)
                p.chmod(p.stat().st_mode & ~0o222)
        return src

    yield src, freeze
    if mounted:
        subprocess.run(["umount", str(ro)], check=True)
    else:
        subprocess.run(["chmod", "-R", "u+w", str(src)], check=True)


def test_read_only_store_refused_for_runs_and_readable_for_the_rest(
        tmp_path, audio_dir, tiny, threads_client, read_only, capsys):
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", PAIRS[:2])
    src, freeze = read_only
    assert run_batch(manifest, src / "s.zarr", tiny, _opts(), client=threads_client).done == 2
    before = {p: p.read_bytes() for p in (src / "s.zarr").rglob("*") if p.is_file()}
    where = freeze()
    store = where / "s.zarr"
    with pytest.raises(StoreError, match=r"cannot write the store there: (Read-only file "
                       r"system|Permission denied).*Reading commands"):
        run_batch(manifest, store, tiny, _opts(), client=threads_client)
    with pytest.raises(StoreError, match="cannot write the store there.*writable place"):
        run_batch(manifest, where / "new.zarr", tiny, _opts(), client=threads_client)
    sets = [x for s in ("iterations=3", "griffin_lim_iterations=2", "model=random", "width=4")
            for x in ("--set", s)]
    assert main(["run", str(manifest), "-o", str(store), "--dry-run", *sets]) == 2
    assert "cannot write the store there" in capsys.readouterr().err
    assert main(["verify", str(store), "--repair"]) == 2
    assert "cannot write the store there" in capsys.readouterr().err
    # reading commands work on it as it is
    assert main(["verify", str(store)]) == 0
    assert main(["status", str(store)]) == 0
    assert main(["report", str(store), "-o", str(tmp_path / "rep")]) == 0
    assert main(["export", str(store), "-o", str(tmp_path / "exp"), "--format", "wav"]) == 0
    assert len(list((tmp_path / "exp").rglob("*.wav"))) == 2
    after = {p: p.read_bytes() for p in (src / "s.zarr").rglob("*") if p.is_file()}
    assert after == before  # not a byte changed, no lock file left


def test_a_file_or_foreign_folder_as_the_store_is_refused_and_an_empty_folder_used(
        tmp_path, audio_dir, tiny, threads_client, capsys):
    """They used to get "Not a directory ... copy it to a writable place" and "not a Zarr
    store"; an empty folder (made by a job script's mkdir -p) could not be used at all."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", PAIRS[:2])
    a_file = tmp_path / "out.zarr"
    a_file.write_text("keep me")
    folder = tmp_path / "results"
    (folder / "notes.txt").parent.mkdir()
    (folder / "notes.txt").write_text("keep me too")
    sets = [x for s in ("iterations=3", "griffin_lim_iterations=2", "model=random", "width=4")
            for x in ("--set", s)]
    for target, said in ((a_file, "a file is there, not a store folder; nothing was changed"),
                         (folder, "a folder of other files is there, not an hpc-nst store (no "
                                  "zarr.json); nothing was changed")):
        for dry in (["--dry-run"], []):
            assert main(["run", str(manifest), "-o", str(target), *sets, *dry]) == 2
            err = capsys.readouterr().err
            assert said in err and "Choose a new path for -o" in err, err
    assert a_file.read_text() == "keep me" and [p.name for p in folder.iterdir()] == ["notes.txt"]
    (tmp_path / "real").mkdir()
    for link, said in ((tmp_path / "link.zarr", "a symbolic link to an empty folder; give the "
                        f"folder itself: -o {tmp_path / 'real'}"),
                       (tmp_path / "broken.zarr", "a broken symbolic link")):
        link.symlink_to(tmp_path / ("real" if "link" in link.name else "nowhere"))
        assert main(["run", str(manifest), "-o", str(link), *sets]) == 2
        assert said in capsys.readouterr().err
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path / "real")
        assert main(["run", str(manifest), "-o", ".", *sets]) == 2
        assert ".: the current folder; nothing was changed" in capsys.readouterr().err
    finally:
        os.chdir(cwd)
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    assert run_batch(manifest, empty, tiny, _opts(), client=threads_client).done == 2
    assert verify_store(empty).ok


def test_store_disappearing_mid_run_stops_without_writing_a_ghost(
        tmp_path, audio_dir, tiny, threads_client, monkeypatch):
    """The store is moved away after the second task wrote: the run stops with a clear error,
    nothing is recreated at the old path, the moved store verifies, and once put back the
    same command resumes to every pair done."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", PAIRS)
    store, away = tmp_path / "s.zarr", tmp_path / "elsewhere.zarr"
    real = worker_mod.write_task_data
    calls = {"n": 0}

    # The move must not land inside a driver flush: between the guard's check and a chunk
    # write zarr would re-create the path (a store vanishing mid-write is not detectable by a
    # check first; tasks here finish within milliseconds of each other, so it happened).
    flushing = threading.Lock()
    real_flush = record_mod.Recorder.flush

    def flush_whole(self):  # noqa: ANN001, ANN202
        with flushing:
            return real_flush(self)

    def write_then_vanish(spec, results):  # noqa: ANN001, ANN202
        out = real(spec, results)
        calls["n"] += 1
        if calls["n"] == 2:
            with flushing:
                shutil.move(store, away)
        return out

    monkeypatch.setattr(record_mod.Recorder, "flush", flush_whole)
    monkeypatch.setattr(worker_mod, "write_task_data", write_then_vanish)
    with pytest.raises(StoreGoneError, match="the store disappeared during the run.*rerun"):
        run_batch(manifest, store, tiny, _opts(flush_interval=0), client=threads_client)
    assert not store.exists(), sorted(p.name for p in store.rglob("*"))  # no ghost store
    assert verify_store(away).ok
    # Not all done (the run stopped). How many are: 0 or more, as tasks run while the driver
    # records: on a fast machine the second task can write before the first is recorded.
    assert int((xr.open_zarr(away).status.values == st.DONE).sum()) < 4
    monkeypatch.setattr(worker_mod, "write_task_data", real)
    shutil.move(away, store)
    # The lock travelled with the store; a new driver process would take it over as stale
    # (same host, its pid gone), but this test's driver is the same, living, process.
    (store / ".hpc_nst.lock").unlink()
    summary = run_batch(manifest, store, tiny, _opts(), client=threads_client)
    assert (summary.done, summary.failed) == (4, 0)
    assert verify_store(store).ok


def test_a_task_run_twice_never_wipes_a_pair_it_failed_the_second_time(
        tmp_path, audio_dir, tiny, threads_client, monkeypatch):
    """dask may execute a task again after the driver took its first result (the worker
    holding it died). If a pair fails in the second execution, its row must keep the first
    execution's data, which the driver recorded done: the store still verifies."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", PAIRS)
    store = tmp_path / "s.zarr"
    real = worker_mod.write_task_data
    writes = []

    def keep(spec, results):  # noqa: ANN001, ANN202
        writes.append((spec, dict(results)))
        return real(spec, results)

    monkeypatch.setattr(worker_mod, "write_task_data", keep)
    opts = RunOptions(batch_size=2, batches_per_task=2, progress_interval=0, quiet=True)
    assert run_batch(manifest, store, tiny, opts, client=threads_client).done == 4
    (spec, results), = writes  # one task: the whole shard of 4
    before = {k: xr.open_zarr(store)[k].values.copy() for k in ("audio", "spectrogram", "loss")}
    first = min(results)
    real(spec, {i: r for i, r in results.items() if i != first})  # the second execution
    after = xr.open_zarr(store)
    for k, v in before.items():
        np.testing.assert_array_equal(after[k].values, v, err_msg=k)
    assert verify_store(store).ok


@pytest.mark.parametrize("damage", ["chunk", "metadata", "root"])
def test_damaged_bookkeeping_is_one_error_naming_the_array(tmp_path, audio_dir, tiny,
                                                           threads_client, capsys, damage):
    """A bit flip in the status chunk (or garbage in its zarr.json) gave a codec's (or JSON's)
    traceback with exit code 1 ("a pair failed") from status, run, export and report."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", PAIRS[:2])
    store = tmp_path / "d.zarr"
    assert run_batch(manifest, store, tiny, _opts(), client=threads_client).done == 2
    if damage == "chunk":
        chunk = store / "status" / "c" / "0"
        data = bytearray(chunk.read_bytes())
        data[len(data) // 2] ^= 0xFF
        data[-3] ^= 0xFF
        chunk.write_bytes(bytes(data))
    elif damage == "metadata":
        (store / "status" / "zarr.json").write_text("{garbage")
    else:
        (store / "zarr.json").write_text("{garbage")
    sets = [x for s in ("iterations=3", "griffin_lim_iterations=2", "model=random", "width=4")
            for x in ("--set", s)]
    for argv in (["status", str(store)], ["export", str(store), "-o", str(tmp_path / "x")],
                 ["report", str(store), "-o", str(tmp_path / "r")],
                 ["run", str(manifest), "-o", str(store), *sets]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        what = (f"its metadata {store / 'zarr.json'} is unreadable" if damage == "root"
                else "its per-pair array 'status' is unreadable")
        assert f"error: {store}: {what}" in err, err
        assert "restore the store from a backup" in err
    assert main(["verify", str(store)]) == 1
    out = capsys.readouterr().out
    if damage != "chunk":
        assert what in out
        return
    # a damaged status chunk is repaired: written again, its pairs computed again
    assert "per-pair array 'status' rows 0..1 do not decode" in out
    assert main(["verify", str(store), "--repair"]) == 0
    assert main(["run", str(manifest), "-o", str(store), *sets]) == 0
    assert main(["verify", str(store)]) == 0
