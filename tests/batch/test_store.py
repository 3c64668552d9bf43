"""Store layout, readability without hpc_nst, status written last, one writer per shard."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
import zarr

from hpc_nst.batch import store as st
from hpc_nst.batch import store_creation as sc
from hpc_nst.batch.manifest import read_manifest
from hpc_nst.batch.record import Recorder
from hpc_nst.batch.resume import match_manifest
from hpc_nst.batch.tasks import store_order
from hpc_nst.batch.worker import PairOutcome, PairSpec, TaskSpec
from hpc_nst.batch.writer import write_task_data
from hpc_nst.config import apply_overrides, load_job
from hpc_nst.engine.transfer import TransferResult

from .conftest import write_csv


def _make(tmp_path, audio_dir, cfg, rows=None, ppt=2):
    rows = rows or ["p1,a.wav,b.wav", "p2,b.wav,c.wav", "p3,d.wav,a.wav", "p4,c.wav,d.wav",
                    "bad,nope.wav,a.wav"]
    man = read_manifest(write_csv(audio_dir / "m.csv", "pair_id,content,style", rows), cfg)
    order = store_order(man.pairs)
    frames, samples, records = sc.capacities(man, cfg)
    path = tmp_path / "s.zarr"
    sc.create_store(path, cfg, man, order, sc.Layout(len(order), ppt, 2, frames, samples,
                                                     records))
    return path, man, order


def _result(frames: int, style_frames: int, samples: int, value: float) -> TransferResult:
    spec = np.full((257, frames), value, np.float32)
    return TransferResult(
        audio=np.full(samples, value, np.float32), output=spec, init=spec * 0, content=spec,
        style=np.full((257, style_frames), value, np.float32),
        losses={"total": np.arange(4, dtype=np.float32), "style": np.ones(4, np.float32)},
        spectral_convergence=0.5, seed=0, device="cpu", timings={"optimise_s": 1.0})


def test_layout_attrs_and_initial_state(tmp_path, audio_dir, tiny):
    path, man, order = _make(tmp_path, audio_dir, tiny)
    root = zarr.open_group(str(path), mode="r")
    assert root.attrs["format"] == st.FORMAT and root.attrs["job_digest"] == tiny.digest()
    attrs = st.root_attrs(root)
    assert attrs["manifest"]["sha256"] == man.sha256
    assert {"hpc_nst", "torch", "dask", "zarr", "distributed"} <= set(attrs["versions"])
    assert all(not isinstance(v, (dict, list)) for v in root.attrs.values())  # flat: netCDF
    ids = list(root["pair"][:])
    assert ids == ["p3", "p2", "p1", "p4", "bad"]  # longest content first, invalid last
    status = root["status"][:]
    assert list(status) == [st.PENDING] * 4 + [st.FAILED]
    assert "nope.wav: file not found" in str(root["error"][4])
    n = len(ids)
    assert root["spectrogram"].shape == (n, 4, 257, 1 + (int(1.1 * 16000) + 1) // 160)
    assert root["spectrogram"].shards[0] == 2 and root["audio"].shards[0] == 2
    assert root["loss"].chunks[0] == 2 and root["loss"].shape[1:] == (len(root["term"][:]), 4)
    assert root["seed"][0] == 0 and root["row"][0] == 4
    assert not any(p.name.startswith(".s.zarr.creating") for p in tmp_path.iterdir())


def test_readable_with_xarray_and_plain_zarr_in_a_fresh_process(tmp_path, audio_dir, tiny):
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    code = f"""
import xarray as xr, zarr, sys
assert "hpc_nst" not in sys.modules
ds = xr.open_zarr({str(path)!r})
assert list(ds.pair.values) == ["p3", "p2", "p1", "p4", "bad"], ds.pair.values
assert ds.spectrogram.dims == ("pair", "kind", "bin", "frame")
assert list(ds.kind.values) == ["content", "style", "init", "output"]
assert ds.loss.sel(term="total").dims == ("pair", "record")
assert int(ds.status.sel(pair="bad")) == 2 and ds.status.attrs["flag_meanings"]
g = zarr.open_group({str(path)!r}, mode="r")
assert g["audio"].shape[0] == 5 and "hpc_nst" not in sys.modules
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_xarray_conventions_and_netcdf(tmp_path, audio_dir, tiny):
    """Every dimension has a coordinate, every variable a long_name, times decode as datetimes,
    attributes are flat: ``xr.open_zarr(store).to_netcdf()`` works as is."""
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    root = st.open_root(path, mode="r+")
    rec = Recorder(root)
    t0 = 1.7e9
    rec.record(PairOutcome(0, None, (10, 5, 10, 10), 1600, 4, 0.3,
                           {"load_s": 0.1, "started_at": t0, "finished_at": t0 + 2.5}, "cpu",
                           "h"))
    rec.flush()
    st.update_runs(path, root, {"id": "r1", "t_start": t0, "argv": ["run", "x"]})
    st.ensure_capacity(path, root, frames=root["spectrogram"].shape[3] + 7, samples=1,
                       records=1)
    ds = xr.open_zarr(path)
    assert set(ds.dims) <= set(ds.coords), set(ds.dims) - set(ds.coords)
    assert ds.frame.size == ds.spectrogram.shape[3] and ds.frame.values[-1] == ds.frame.size - 1
    assert ds.sample.size == ds.audio.shape[1] and ds.record.size == ds.loss.shape[2]
    for name, var in {**ds.data_vars, **ds.coords}.items():
        assert var.attrs.get("long_name"), name
    assert ds.bin.attrs["units"] == "Hz"
    assert ds.started_at.dtype.kind == "M" and np.isnat(ds.started_at.values[1:]).all()
    assert (ds.finished_at.values[0] - ds.started_at.values[0]) / np.timedelta64(1, "ms") \
        == 2500
    assert json.loads(ds.attrs["runs"])[0]["id"] == "r1"
    ds.to_netcdf(tmp_path / "s.nc")
    back = xr.open_dataset(tmp_path / "s.nc")
    assert list(back.pair.values) == list(ds.pair.values)
    np.testing.assert_array_equal(back.timings.values, ds.timings.values)
    assert back.started_at.values[0] == ds.started_at.values[0]


def test_status_is_written_last(tmp_path, audio_dir, tiny, monkeypatch):
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    root = st.open_root(path, mode="r+")
    rec = Recorder(root)
    rec.record(PairOutcome(0, None, (10, 5, 10, 10), 1600, 4, 0.3, {"load_s": 0.1}, "cpu", "h"))
    order = []
    for name, arr in rec.arrays.items():
        class Spy:
            def __init__(self, arr, name):
                self.arr, self.name = arr, name

            def __setitem__(self, key, value):
                order.append(self.name)
                if self.name == "timings" and os.environ.get("CRASH"):
                    raise OSError("disk full")
                self.arr[key] = value
        rec.arrays[name] = Spy(arr, name)
    monkeypatch.setenv("CRASH", "1")
    with pytest.raises(OSError):
        rec.flush()
    # the crash hit before status: on disk the pair is still pending
    assert st.open_root(path)["status"][0] == st.PENDING
    monkeypatch.delenv("CRASH")
    order.clear()
    rec.flush()
    assert order[-1] == "status" and order.count("status") == 1
    fresh = st.open_root(path)
    assert fresh["status"][0] == st.DONE and fresh["attempts"][0] == 1
    assert list(fresh["frames"][0]) == [10, 5, 10, 10] and fresh["host"][0] == "h"


def test_writer_whole_and_partial_shards(tmp_path, audio_dir, tiny):
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    spec = lambda idx: TaskSpec(str(path), 0, 0, 2, ((tiny, tuple(  # noqa: E731
        PairSpec(i, f"p{i}", "c", "s", 0) for i in idx)),))
    errors, records, _ = write_task_data(spec([0, 1]), {0: _result(30, 20, 4000, 1.0),
                                                     1: _result(12, 40, 1500, 2.0)})
    assert errors == {} and records == {0: 4, 1: 4}
    root = st.open_root(path)
    sp = root["spectrogram"]
    assert sp[0, 0, 0, 29] == 1.0 and sp[0, 0, 0, 30] == 0.0 and sp[1, 1, 3, 39] == 2.0
    assert root["audio"][1, 1499] == 2.0 and root["audio"][1, 1500] == 0.0
    assert np.isnan(root["loss"][0, list(st.read_column(root, "term")).index("content"), 0])
    assert list(root["loss"][0, 0]) == [0, 1, 2, 3]
    # a later attempt at pair 1 alone keeps pair 0 untouched (read-modify-write of the shard)
    errors, _, _ = write_task_data(spec([1]), {1: _result(8, 8, 1000, 3.0)})
    assert sp[0, 0, 0, 29] == 1.0 and root["audio"][0, 3999] == 1.0
    assert sp[1, 0, 0, 7] == 3.0 and sp[1, 0, 0, 11] == 0.0  # the old tail is cleared
    # exactly one shard file per bulk array for that task
    for name in ("spectrogram", "audio", "loss"):
        files = [f for f in (path / name / "c").rglob("*") if f.is_file()]
        assert len(files) == 1, (name, files)
    errors, _, _ = write_task_data(spec([0]), {0: _result(10_000, 8, 1000, 3.0)})
    assert "longer than the store's capacity" in errors[0]


def test_changed_job_or_manifest_is_refused(tmp_path, audio_dir, tiny):
    path, man, _ = _make(tmp_path, audio_dir, tiny)
    root = st.open_root(path, mode="r+")
    st.check_job(path, root, tiny)
    with pytest.raises(st.StoreError, match=r"optim.iterations: store has 3, this run 9"):
        st.check_job(path, root, apply_overrides(tiny, {"iterations": "9"}))
    assert [man.pairs[k].pair_id for k in match_manifest(path, root, man)] == \
        ["p3", "p2", "p1", "p4", "bad"]
    other = read_manifest(write_csv(audio_dir / "m2.csv", "pair_id,content,style",
                                    ["p1,a.wav,b.wav", "p2,b.wav,a.wav", "p9,a.wav,c.wav"]),
                          tiny)
    with pytest.raises(st.StoreError) as info:
        match_manifest(path, root, other)
    text = str(info.value)
    assert "p9 (line 4)" in text and "p3" in text and "p2 (line 3)" in text and "-o NEW" in text


def test_capacity_grows_without_touching_data(tmp_path, audio_dir, tiny):
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    spec = TaskSpec(str(path), 0, 0, 2, ((tiny, (PairSpec(0, "p", "c", "s", 0),)),))
    write_task_data(spec, {0: _result(30, 20, 4000, 1.0)})
    root = st.open_root(path, mode="r+")
    frames = root["spectrogram"].shape[3]
    assert st.ensure_capacity(path, root, frames + 5000, 10, 1)
    root = st.open_root(path)
    assert root["spectrogram"].shape[3] == frames + 5000
    assert root["spectrogram"][0, 0, 0, 29] == 1.0 and root["audio"][0, 10] == 1.0
    with pytest.raises(st.StoreError, match="loss values"):
        st.ensure_capacity(path, st.open_root(path, mode="r+"), 1, 1, 999)


def test_lock_is_exclusive_and_stale_locks_are_taken_over(tmp_path, audio_dir, tiny):
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    with st.StoreLock(path):
        with pytest.raises(st.StoreError, match="in use by another run"):
            st.StoreLock(path).__enter__()
    assert not (path / st.LOCK_NAME).exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (path / st.LOCK_NAME).write_text(f"{socket.gethostname()} {dead} 2020-01-01\n")
    with st.StoreLock(path) as lock:
        assert lock.held


def test_record_capacity(tiny):
    assert sc.record_capacity(tiny) == 4  # 3 iterations + the final state
    every = apply_overrides(tiny, {"iterations": "10", "optim.record_every": "4"})
    assert sc.record_capacity(every) == len([0, 4, 8, 9]) + 1


def test_store_from_before_the_timbre_keys_resumes_with_the_per_bin_term(tmp_path, audio_dir,
                                                                          tiny):
    """Stores record every job key; one made before ``loss.timbre_envelope`` existed ran the
    per-bin term and must resume under it, and be refused (naming the key) under another."""
    legacy = apply_overrides(tiny, {"loss.timbre_envelope": "spectrum"})
    path, _, _ = _make(tmp_path, audio_dir, legacy)
    root = st.open_root(path, mode="r+")
    job = dict(st.root_attrs(root)["job"])
    job["loss"] = {k: v for k, v in job["loss"].items() if not k.startswith("timbre_e")
                   and k != "timbre_coefficients"}
    root.attrs["job"] = job  # as releases before JSON attributes wrote it: nested
    st.check_job(path, root, legacy)
    cepstral = apply_overrides(tiny, {"loss.timbre_envelope": "cepstral"})
    with pytest.raises(st.StoreError, match=r"loss.timbre_envelope: store has None, this run "
                                            r"'cepstral'"):
        st.check_job(path, root, cepstral)


def test_a_store_of_an_earlier_method_revision_is_refused_naming_it(tmp_path, audio_dir,
                                                                     monkeypatch):
    """A method whose output changed (its revision raised) must not resume a store of the
    earlier revision: the dataset would mix the two."""
    import hpc_nst.config as C

    sampler = load_job(overrides={"method": "sampler"})
    path, _, _ = _make(tmp_path, audio_dir, sampler)
    root = st.open_root(path, mode="r+")
    revision = C.METHOD_REVISIONS["sampler"]
    assert st.root_attrs(root)["job"]["method_revision"] == revision  # travels with the data
    st.check_job(path, root, load_job(overrides={"method": "sampler"}))
    monkeypatch.setitem(C.METHOD_REVISIONS, "sampler", revision + 1)
    with pytest.raises(st.StoreError, match=rf"method_revision: store has {revision}, this "
                                            rf"run {revision + 1}"):
        st.check_job(path, root, load_job(overrides={"method": "sampler"}))


def test_an_empty_or_requeued_jobs_lock_is_taken_over_and_no_other(tmp_path, audio_dir, tiny,
                                                                   monkeypatch):
    """An empty lock (its writer died between creating and writing it) blocks for a while
    only; a lock of an earlier incarnation of this Slurm job (a requeued driver, maybe on
    another node) is stale; a lock of another job or another live driver is not."""
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    lock = path / st.LOCK_NAME
    with st.StoreLock(path):
        assert lock.read_text().split()[:2] == [socket.gethostname(), str(os.getpid())]
    assert sorted(p.name for p in path.glob(".hpc_nst.lock*")) in ([], [".hpc_nst.lock.guard"])
    lock.write_text("")
    with pytest.raises(st.StoreError, match="in use by another run"):
        st.StoreLock(path).__enter__()
    old = lock.stat().st_mtime - 120
    os.utime(lock, (old, old))
    with st.StoreLock(path) as taken:
        assert taken.held
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    for owner, stale in (("node7 123 2026-01-01T00:00:00 slurm=4242:0", True),
                         ("node7 123 2026-01-01T00:00:00 slurm=4242:1", False),
                         ("node7 123 2026-01-01T00:00:00 slurm=99:0", False),
                         ("node7 123 2026-01-01T00:00:00", False)):
        lock.write_text(owner + "\n")
        if stale:
            with st.StoreLock(path) as taken:
                assert "slurm=4242:1" in lock.read_text()
        else:
            with pytest.raises(st.StoreError, match="in use by another run"):
                st.StoreLock(path).__enter__()
    lock.unlink()


def test_a_task_never_writes_into_a_store_put_in_its_place(tmp_path, audio_dir, tiny):
    """A task made for one store finds another at its path (deleted and created again): it
    writes nothing and says so; for the same store it writes."""
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    inode = path.stat().st_ino
    pairs = ((tiny, (PairSpec(0, "p", "c", "s", 0),)),)
    other = TaskSpec(str(path), 0, 0, 2, pairs, store_inode=inode + 1)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    with pytest.raises(st.StoreGoneError, match="deleted, moved, replaced"):
        write_task_data(other, {0: _result(30, 20, 4000, 1.0)})
    assert {p: p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    same = TaskSpec(str(path), 0, 0, 2, pairs, store_inode=inode)
    errors, records, _ = write_task_data(same, {0: _result(30, 20, 4000, 1.0)})
    assert not errors and records == {0: 4}


def test_a_growth_cut_short_is_completed_by_the_next_call(tmp_path, audio_dir, tiny):
    """Interrupted after resizing the spectrograms only: the next ensure_capacity (the rerun)
    brings the frame coordinate and the consolidated metadata to the array's size."""
    path, _, _ = _make(tmp_path, audio_dir, tiny)
    root = st.open_root(path, mode="r+")
    arr = root["spectrogram"]
    frames = arr.shape[3] + 50
    arr.resize((*arr.shape[:3], frames))  # ... and killed here
    assert st.open_root(path)["frame"].shape[0] == frames - 50
    assert st.ensure_capacity(path, st.open_root(path, mode="r+"), frames, 1, 1)
    ds = xr.open_zarr(path)
    assert ds.sizes["frame"] == frames and ds.spectrogram.shape[3] == frames
    assert not st.ensure_capacity(path, st.open_root(path, mode="r+"), frames, 1, 1)


def test_a_killed_creations_leftovers_are_removed_by_the_next_one(tmp_path):
    """A store's creation killed (SIGKILL, a signal during its clean-up) left its hidden
    folder beside the store for good."""
    import os
    import socket

    from hpc_nst.batch.locations import remove_dead_creations

    host = socket.gethostname()
    dead = tmp_path / f".s.zarr.creating-{host}-{2 ** 22 + 12345}"  # above Linux's pid_max
    alive = tmp_path / f".s.zarr.creating-{host}-{os.getppid()}"
    other = tmp_path / ".s.zarr.creating-elsewhere-1"  # another host's: not judged here
    for folder in (dead, alive, other):
        (folder / "pair").mkdir(parents=True)
    remove_dead_creations(tmp_path / "s.zarr", host)
    assert not dead.exists() and alive.exists() and other.exists()
