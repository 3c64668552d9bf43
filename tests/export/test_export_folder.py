"""The export folder: it loads with the folder loaders (the sidecars are dotfiles), reruns give
the same bytes, ``--overwrite`` removes the earlier export's files (only those), a full disk
stops it with one line and a rerun completes it, and refused exports leave nothing behind."""

from __future__ import annotations

import errno
import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hpc_nst.batch import store as st
from hpc_nst.cli import main
from tests.batch.conftest import SR, tone

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
FORMATS = ("wav", "flac", "audiofolder", "parquet", "webdataset")
IDS = ["ab", "bc", "ca"]
SIDECARS = {".export.json", ".export.files.json", "export.json", "export.files.json"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """3 done pairs of a pass-through job (seconds to make)."""
    d = tmp_path_factory.mktemp("folder")
    return _copy_store(d, d / "s.zarr", (("a", 220, 0.3), ("b", 330, 0.4), ("c", 440, 0.2)),
                       "pair_id,content,style,split\nab,a.wav,b.wav,train\n"
                       "bc,b.wav,c.wav,test\nca,c.wav,a.wav,train\n")


def _copy_store(d: Path, out: Path, tones: tuple, manifest: str, *extra: str) -> Path:
    """A store of the pass-through job content-copy over ``tones`` (name, f0, seconds)."""
    d.mkdir(parents=True, exist_ok=True)
    for name, f0, sec in tones:
        sf.write(d / f"{name}.wav", tone(f0, sec), SR)
    (d / "m.csv").write_text(manifest)
    assert main(["run", str(d / "m.csv"), "-o", str(out), "--job",
                 str(ROOT / "jobs" / "content-copy.toml"), "--workers", "1",
                 "--progress-interval", "0", *extra]) == 0
    return out


def export(store: Path, out: Path, fmt: str, *extra: str) -> int:
    return main(["export", str(store), "-o", str(out), "--format", fmt, *extra])


def tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file()}


def _no_sidecar_in(values: list[str]) -> None:
    assert not any(Path(str(v)).name in SIDECARS for v in values), values


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_folder_loads_with_its_folder_loader(store, tmp_path, fmt, capsys):
    """Loaded from the folder path (not the data file): 3 rows, no sidecar as data."""
    import datasets

    out = tmp_path / fmt
    assert export(store, out, fmt) == 0
    if fmt == "parquet":
        import pandas as pd
        import pyarrow.parquet as pq

        table = pq.read_table(out)
        assert table.num_rows == 3 and sorted(table.column("pair_id").to_pylist()) == IDS
        frame = pd.read_parquet(out)
        assert len(frame) == 3 and "store" not in frame.columns
        ds = datasets.load_dataset("parquet", data_dir=str(out), split="train")
        assert ds.num_rows == 3 and sorted(ds["pair_id"]) == IDS
        assert isinstance(ds.features["audio"], datasets.Audio)
    elif fmt == "webdataset":
        ds = datasets.load_dataset("webdataset", data_dir=str(out), split="train")
        assert ds.num_rows == 3 and sorted(r["pair_id"] for r in ds["json"]) == IDS
        _no_sidecar_in(ds["__url__"])
    else:
        for ds in (datasets.load_dataset(str(out), split="train"),
                   datasets.load_dataset("audiofolder", data_dir=str(out), split="train")):
            assert ds.num_rows == 3 and sorted(ds["pair_id"]) == IDS
            assert "store" not in ds.column_names
            for row in ds:
                samples = row["audio"].get_all_samples()
                assert samples.sample_rate == SR and samples.data.shape[1] > 0
        # one audio file and the sidecars: with plain-named sidecars (more .json than
        # audio) the folder loader took the folder for a JSON dataset and failed
        one = tmp_path / f"{fmt}-one"
        assert export(store, one, fmt, "--where", "pair_id == 'ab'") == 0
        ds = datasets.load_dataset(str(one), split="train")
        assert ds.num_rows == 1 and ds["pair_id"] == ["ab"] and "audio" in ds.column_names
    names = {p.name for p in out.iterdir()}
    assert ".export.json" in names and not names & {"export.json", "export.files.json"}


def test_float_wav_has_no_timestamped_peak_chunk():
    from hpc_nst.export.items import ExportItem

    audio = tone(220, 0.1)
    data = ExportItem("p", audio, SR, {}).encode("wav")
    assert b"PEAK" not in data
    back, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == SR and sf.info(io.BytesIO(data)).subtype == "FLOAT"
    np.testing.assert_array_equal(back, audio)


def test_flac_scales_a_loud_output_to_fit_instead_of_clipping_it_and_says_so(caplog):
    from hpc_nst.export.items import ExportItem

    loud = 3.0 * tone(220, 0.1) / np.abs(tone(220, 0.1)).max()  # peak 3: FLAC holds +-1
    with caplog.at_level("WARNING", logger="hpc_nst.export.items"):
        back, _ = sf.read(io.BytesIO(ExportItem("loud", loud, SR, {}).encode("flac")),
                          dtype="float32")
    assert "loud: peak 3 is beyond FLAC's +-1: scaled by -9.54 dB" in caplog.text
    assert 0.999 < np.abs(back).max() <= 1.0
    np.testing.assert_allclose(back, loud / 3.0, atol=1e-6)  # the shape kept: not clipped
    caplog.clear()
    quiet = tone(220, 0.1)
    with caplog.at_level("WARNING", logger="hpc_nst.export.items"):
        same, _ = sf.read(io.BytesIO(ExportItem("q", quiet, SR, {}).encode("flac")),
                          dtype="float32")
    assert not caplog.text
    np.testing.assert_allclose(same, quiet, atol=2e-7)  # within 24-bit rounding, unscaled


def test_every_format_gives_the_same_bytes_a_second_later(store, tmp_path):
    """libsndfile's PEAK chunk held the time of writing (byte 61 of a float WAV): two exports
    more than a second apart must still be identical, sidecars included."""
    runs = []
    for k in range(2):
        if k:
            time.sleep(1.1)
        for fmt in FORMATS:
            assert export(store, tmp_path / f"{fmt}-{k}", fmt, "--shard-size", "2") == 0
        runs.append({fmt: tree(tmp_path / f"{fmt}-{k}") for fmt in FORMATS})
    for fmt in FORMATS:
        assert runs[0][fmt] == runs[1][fmt], fmt
    assert b"PEAK" not in runs[0]["wav"]["ab.wav"]


def test_an_export_of_an_earlier_release_is_recognised_and_migrated(store, tmp_path, capsys):
    out = tmp_path / "old"
    assert export(store, out, "wav") == 0
    (out / ".export.json").rename(out / "export.json")  # as written before the dotfiles
    (out / ".export.files.json").rename(out / "export.files.json")
    capsys.readouterr()
    assert export(store, out, "wav") == 0  # ours: no --overwrite needed, files kept
    assert "kept 3 existing" in capsys.readouterr().out
    names = {p.name for p in out.iterdir()}
    assert {".export.json", ".export.files.json"} <= names
    assert not names & {"export.json", "export.files.json"}
    # an old parquet export: another format is refused, and replaced with --overwrite
    pq_out = tmp_path / "old-pq"
    assert export(store, pq_out, "parquet") == 0
    (pq_out / ".export.json").rename(pq_out / "export.json")
    assert export(store, pq_out, "wav") == 2
    assert "holds an export of" in capsys.readouterr().err
    assert export(store, pq_out, "wav", "--overwrite") == 0
    assert sorted(p.name for p in pq_out.iterdir()) == [
        ".export.files.json", ".export.json", "ab.wav", "bc.wav", "ca.wav", "metadata.jsonl"]
    # someone else's export.json is not taken for ours, nor removed
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "export.json").write_text('{"my": "settings"}')
    assert export(store, mine, "parquet") == 2
    assert "holds no hpc-nst export" in capsys.readouterr().err
    assert export(store, mine, "parquet", "--overwrite") == 0
    assert (mine / "export.json").read_text() == '{"my": "settings"}'
    # ... even one that happens to have a "store", a "format" and a list of files
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    card = '{"store": "s3://bucket", "format": "csv", "files": ["keep.txt"]}'
    (theirs / "export.json").write_text(card)
    assert export(store, theirs, "parquet", "--overwrite") == 0
    assert (theirs / "keep.txt").read_text() == "mine"
    assert (theirs / "export.json").read_text() == card


@pytest.mark.parametrize(("first", "then"), [("parquet", "wav"), ("wav", "parquet"),
                                             ("audiofolder", "webdataset"),
                                             ("webdataset", "flac")])
def test_overwrite_removes_the_earlier_exports_files_only(store, tmp_path, first, then,
                                                          capsys):
    out = tmp_path / "x"
    assert export(store, out, first, "--shard-size", "1") == 0
    (out / "notes.txt").write_text("mine")  # not ours: stays
    alone = tmp_path / "alone"
    assert export(store, alone, then) == 0
    assert export(store, out, then, "--overwrite") == 0
    assert "removed" in capsys.readouterr().out
    got, want = tree(out), tree(alone)  # the cards differ in "removed" only
    card = json.loads(got.pop(".export.json"))
    assert got == {**{k: v for k, v in want.items() if k != ".export.json"},
                   "notes.txt": b"mine"}
    assert card["removed"] > 0


def test_export_to_a_file_is_refused_in_one_line(store, tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("x")
    capsys.readouterr()
    assert export(store, target, "parquet") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file, not a folder" in err and str(target) in err


def test_shard_size_is_checked_and_said_ignored_where_nothing_is_sharded(store, tmp_path,
                                                                          capsys, caplog):
    """`--shard-size` with plain files did nothing, silently; 0 was taken."""
    assert export(store, tmp_path / "z", "webdataset", "--shard-size", "0") == 2
    assert "--shard-size 0: give a number of items, at least 1" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()
    assert export(store, tmp_path / "w", "wav", "--shard-size", "2") == 0
    assert "--shard-size: wav writes one file per pair, no shards or row groups; ignored" in \
        caplog.text
    caplog.clear()
    assert export(store, tmp_path / "d", "webdataset", "--shard-size", "2") == 0
    assert "--shard-size" not in caplog.text and len(list((tmp_path / "d").glob("*.tar"))) == 2


def _fail_on(monkeypatch, fmt: str) -> None:
    """Make the n-th write of ``fmt``'s data raise ENOSPC (after some data is written)."""
    calls = {"n": 0}

    def failing(original, nth):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == nth:
                raise OSError(errno.ENOSPC, "No space left on device")
            return original(*args, **kwargs)
        return wrapper

    if fmt == "parquet":
        import pyarrow.parquet as pq
        monkeypatch.setattr(pq.ParquetWriter, "write_table",
                            failing(pq.ParquetWriter.write_table, 2))
    elif fmt == "webdataset":
        monkeypatch.setattr(tarfile.TarFile, "addfile", failing(tarfile.TarFile.addfile, 3))
    else:
        monkeypatch.setattr(Path, "write_bytes", failing(Path.write_bytes, 2))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_stops_with_one_line_and_a_rerun_completes_it(store, tmp_path, fmt,
                                                                   capsys, monkeypatch):
    clean, out = tmp_path / "clean", tmp_path / "out"
    shards = ("--shard-size", "1") if fmt in ("parquet", "webdataset") else ()
    assert export(store, clean, fmt, *shards) == 0
    with monkeypatch.context() as m:
        _fail_on(m, fmt)
        capsys.readouterr()
        assert export(store, out, fmt, *shards) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "no space left" in err and "free space" in err and "rerun the same command" in err
    card = json.loads((out / ".export.json").read_text())  # the partial folder is ours
    assert card["complete"] is False and card["format"] == fmt
    assert not [p for p in out.rglob("*") if p.name.startswith(".") and p.name.count(".") > 2
                and p.name != ".export.files.json"]  # no temporary file left
    assert export(store, out, fmt, *shards) == 0
    assert tree(out) == tree(clean)


def test_skip_bad_counts_the_pairs_it_left_out(tmp_path, capsys):
    store = _copy_store(tmp_path / "in", tmp_path / "s.zarr",
                        (("a", 220, 0.3), ("b", 330, 0.4), ("c", 440, 0.2), ("e", 550, 0.3)),
                        "pair_id,content,style\np1,a.wav,b.wav\np2,b.wav,c.wav\n"
                        "p3,c.wav,e.wav\np4,e.wav,a.wav\n", "--batch-size", "2")
    ids = [str(p) for p in st.open_root(store)["pair"][:]]
    out = tmp_path / "wav"
    assert export(store, out, "wav") == 0  # before the damage: every pair
    good = {p.stem: p.read_bytes() for p in out.glob("*.wav")}
    assert sorted(good) == sorted(ids)
    for chunk in (store / "audio" / "c").rglob("*"):
        if chunk.is_file():
            raw = bytearray(chunk.read_bytes())
            raw[:64] = bytes(64)  # each shard's first inner chunk: undecodable
            chunk.write_bytes(bytes(raw))
    capsys.readouterr()
    assert export(store, out, "wav", "--skip-bad") == 0
    line = capsys.readouterr().out
    card = json.loads((out / ".export.json").read_text())
    bad = sorted(card["left_out_bad_ids"])
    assert bad and card["left_out_bad"] == len(bad) and set(bad) <= set(ids)
    assert card["items"] == 4 - len(bad)
    assert f"{len(bad)} pair(s) left out by --skip-bad" in line
    assert all(p in line for p in bad)
    # the earlier export's files of the pairs now failing verification are kept, untouched:
    # the last good copy of their audio (they were removed as "no longer in it")
    assert {p.stem: p.read_bytes() for p in out.glob("*.wav")} == good
    assert main(["export", str(store), "-o", str(out), "--format", "wav", "--skip-bad"]) == 0
    assert {p.stem: p.read_bytes() for p in out.glob("*.wav")} == good  # a rerun: the same
    # after `verify --repair` (the damaged pairs pending, not computed again yet) a plain
    # export removed them as "not done", the last good copies with them; kept now
    repaired = tmp_path / "repaired.zarr"
    shutil.copytree(store, repaired)
    kept = tmp_path / "kept"
    shutil.copytree(out, kept)
    card = json.loads((kept / ".export.json").read_text())
    (kept / ".export.json").write_text(json.dumps({**card, "store": str(repaired.resolve())}))
    assert main(["verify", str(repaired), "--repair"]) == 0
    assert export(repaired, kept, "wav") == 0
    assert {p.stem: p.read_bytes() for p in kept.glob("*.wav")} == good
    # only a file holding the audio the store records for the pair (a pair computed again
    # since: its old file is not that) and not one --where leaves out
    record = json.loads((out / ".export.files.json").read_text())
    stale, *rest = bad
    codec, digest, size = record[stale].split(":")
    record[stale] = f"{codec}:{'0' * len(digest)}:{size}"
    (out / ".export.files.json").write_text(json.dumps(record))
    assert main(["export", str(store), "-o", str(out), "--format", "wav", "--skip-bad"]) == 0
    assert sorted(p.stem for p in out.glob("*.wav")) == sorted(set(good) - {stale})
    assert main(["export", str(store), "-o", str(out), "--format", "wav", "--skip-bad",
                 "--where", "pair_id != 'none'"]) == 0
    assert sorted(p.stem for p in out.glob("*.wav")) == sorted(set(good) - set(bad))


def test_refused_exports_leave_no_folder(store, tmp_path, capsys):
    out = tmp_path / "x"
    assert export(store, out, "audiofolder", "--report", str(tmp_path / "no-report")) == 2
    assert not out.exists()
    assert export(store, out, "parquet", "--where", "pair_id == 'none'") == 2
    assert "every done pair was left out" in capsys.readouterr().err
    assert not out.exists()


def test_an_interrupted_export_is_resumed_not_refused(store, tmp_path, monkeypatch, capsys):
    """An audiofolder stopped part-way is a non-empty folder: still recognised as ours."""
    out = tmp_path / "af"
    with monkeypatch.context() as m:
        _fail_on(m, "audiofolder")
        assert export(store, out, "audiofolder") == 2
    assert any((out / "audio").iterdir())
    assert export(store, out, "audiofolder") == 0
    assert sorted(p.name for p in (out / "audio").iterdir()) == [f"{i}.wav" for i in IDS]
    shutil.rmtree(out)


def test_sigterm_mid_write_and_a_killed_exports_temporaries(store, tmp_path, monkeypatch,
                                                           capsys):
    """SIGTERM while the Parquet file was written left its temporary file for good (export
    did not handle SIGTERM, and a rerun never removed what a SIGKILL left)."""
    import os
    import signal

    import pyarrow.parquet as pq

    out = tmp_path / "pq"
    real = pq.ParquetWriter.write_table

    def write_then_terminated(self, table, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        real(self, table, *a, **k)
        os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        m.setattr(pq.ParquetWriter, "write_table", write_then_terminated)
        with pytest.raises(SystemExit) as stop:
            export(store, out, "parquet")
    assert stop.value.code == 143 and "stopped by SIGTERM" in capsys.readouterr().err
    assert not [p.name for p in out.iterdir() if p.name.startswith(".data.parquet.")]
    # what a SIGKILL leaves (atomic_path's names) goes with the rerun; other dotfiles stay
    (out / ".data.parquet.ab_d12x9.parquet").write_bytes(b"half")
    (out / ".metadata.jsonl.zz9_8x7y.jsonl").write_bytes(b"half")
    (out / ".notes.txt").write_text("mine")
    assert export(store, out, "parquet") == 0
    assert sorted(p.name for p in out.iterdir()) == [".export.json", ".notes.txt",
                                                      "data.parquet"]


def test_a_second_export_into_a_folder_in_use_is_refused_and_a_dead_ones_lock_taken_over(
        store, tmp_path, monkeypatch, capsys):
    """Two exports writing into one folder at once removed each other's temporaries and
    overwrote each other's card: the second is now refused, naming the first, and leaves the
    first's files alone; the lock a killed export left is taken over (and does not make the
    folder count as someone else's)."""
    import os
    import socket
    import subprocess
    import threading

    import pyarrow.parquet as pq

    from hpc_nst.export import formats

    out = tmp_path / "busy"
    writing, release = threading.Event(), threading.Event()
    real = formats.FORMATS["parquet"]

    def slow(items, folder, opts):
        writing.set()
        assert release.wait(60)
        return real(items, folder, opts)

    monkeypatch.setitem(formats.FORMATS, "parquet", slow)
    first: list[int] = []
    thread = threading.Thread(target=lambda: first.append(export(store, out, "parquet")))
    thread.start()
    try:
        assert writing.wait(60)
        capsys.readouterr()
        assert export(store, out, "parquet") == 2
        err = capsys.readouterr().err
        assert "in use by another export" in err and f"pid {os.getpid()}" in err
        assert (out / ".export.lock").is_file()
        # another format there: the running export is not one "stopped part-way"
        assert export(store, out, "webdataset") == 2
        assert "as 'parquet' (being written now)" in capsys.readouterr().err
    finally:
        release.set()
        thread.join(60)
    assert first == [0] and not (out / ".export.lock").exists()
    assert sorted(pq.read_table(out).column("pair_id").to_pylist()) == IDS

    # a killed export's lock (its process gone) in a folder it never wrote a card into
    dead = subprocess.Popen(["true"])
    dead.wait()
    fresh = tmp_path / "after-kill"
    fresh.mkdir()
    (fresh / ".export.lock").write_text(f"{socket.gethostname()} {dead.pid} 2026-12-07T00:00:00\n")
    assert export(store, fresh, "webdataset") == 0
    assert not (fresh / ".export.lock").exists() and (fresh / "shard-000000.tar").is_file()


def test_a_users_own_files_are_never_replaced_without_overwrite(store, tmp_path, capsys):
    """A plain export into a folder of the user's files overwrote their ``<pair_id>.wav``
    (exit 0), recorded it as its own, and a later export removed it."""
    out = tmp_path / "songs"
    out.mkdir()
    mine = tone(100, 0.2)
    sf.write(out / "bc.wav", mine, SR)
    (out / "notes.txt").write_text("my own")
    before = (out / "bc.wav").read_bytes()
    assert export(store, out, "wav") == 2
    err = capsys.readouterr().err
    assert "1 file(s) named as this export names its outputs (one per done pair of the " \
           "store) are there already and no hpc-nst export wrote them (bc.wav)" in err
    assert "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["bc.wav", "notes.txt"]
    assert (out / "bc.wav").read_bytes() == before
    # an export of ours there is rewritten as before; the user's other file is left alone
    assert export(store, out, "wav", "--overwrite") == 0
    assert export(store, out, "wav") == 0 and (out / "notes.txt").read_text() == "my own"
    assert sorted(p.name for p in out.glob("*.wav")) == [f"{i}.wav" for i in IDS]


@pytest.mark.parametrize("fmt", ["wav", "webdataset"])
def test_a_where_that_leaves_out_every_pair_keeps_the_earlier_export(store, tmp_path, fmt,
                                                                     capsys):
    """An export with a --where matching nothing wrote nothing and removed every file of the
    earlier export (exit 0): a typo emptied a dataset folder. Parquet refused already."""
    out = tmp_path / fmt
    assert export(store, out, fmt) == 0
    before = tree(out)
    assert export(store, out, fmt, "--where", "pair_id == 'zz'") == 2
    err = capsys.readouterr().err
    assert "every done pair was left out" in err and "would remove the" in err
    assert tree(out) == before
    # into a new folder an empty dataset is the filter's answer (tests/export/test_formats.py)
    assert export(store, tmp_path / f"new-{fmt}", fmt, "--where", "pair_id == 'zz'") == 0


@pytest.mark.parametrize("fmt", ["flac", "parquet"])
def test_a_flac_file_s_gain_travels_with_it(tmp_path, fmt):
    """A loud output written to FLAC scaled down: only a log line said so, while the item's
    level metrics describe the stored (unscaled) audio. Now every item of a FLAC export has
    ``flac_gain_db`` (0, or the scale), with which the file gives back the stored level."""
    import pandas as pd

    d = tmp_path / "m"
    d.mkdir()
    sf.write(d / "loud.wav", 1.7 * tone(220, 0.3) / np.abs(tone(220, 0.3)).max(), SR,
             subtype="FLOAT")
    store = _copy_store(d, d / "s.zarr", (("a", 330, 0.3),),
                        "pair_id,content,style\nloud,loud.wav,a.wav\nquiet,a.wav,loud.wav\n")
    out = tmp_path / fmt
    assert export(store, out, fmt, *(["--codec", "flac"] if fmt == "parquet" else [])) == 0
    if fmt == "flac":
        rows = pd.read_json(out / "metadata.jsonl", lines=True).set_index("pair_id")
        audio = {p: sf.read(out / f"{p}.flac", dtype="float32")[0] for p in rows.index}
    else:
        rows = pd.read_parquet(out / "data.parquet").set_index("pair_id")
        audio = {p: sf.read(io.BytesIO(rows.loc[p, "audio"]["bytes"]), dtype="float32")[0]
                 for p in rows.index}
    assert rows.loc["quiet", "flac_gain_db"] == 0.0
    assert rows.loc["loud", "flac_gain_db"] == pytest.approx(20 * np.log10(1 / 1.7), abs=1e-3)
    from hpc_nst.batch.reader import iter_pairs, store_info

    pairs = {p.pair_id: p.audio for p in iter_pairs(store_info(store), with_audio=True)}
    back = audio["loud"] * 10 ** (-rows.loc["loud", "flac_gain_db"] / 20)
    np.testing.assert_allclose(back, pairs["loud"], atol=1e-5)
    assert export(store, tmp_path / "wav", "wav") == 0  # wav keeps the level: no such field
    assert "flac_gain_db" not in (tmp_path / "wav" / "metadata.jsonl").read_text()


def test_webdataset_labels_empty_in_the_first_items_load_with_datasets(store, tmp_path):
    """A label missing from the first items was written as null: `datasets` typed the field
    null from them and failed on the first labelled item ("Couldn't cast array of type string
    to null")."""
    import datasets

    labels = tmp_path / "labels.csv"
    labels.write_text("pair_id,style_label\nca,Violin\n")
    out = tmp_path / "wds"
    assert export(store, out, "webdataset", "--shard-size", "1", "--labels", str(labels)) == 0
    ds = datasets.load_dataset("webdataset", data_dir=str(out), split="train",
                               cache_dir=str(tmp_path / "cache"))
    got = {row["__key__"]: row["json"]["style_label"] for row in ds}
    assert got == {"ab": "", "bc": "", "ca": "Violin"}


def test_webdataset_metric_missing_in_the_first_items_loads_typed_from_the_card(tmp_path):
    """A metric without a value in the first five items (``lsd_db`` of pairs without a
    target) made ``datasets`` type the field null and fail on the first item that had one;
    the export's dataset card (README.md) now declares every field's type."""
    import datasets

    d = tmp_path / "m"
    store = _copy_store(d, d / "s.zarr", (("a", 220, 0.3), ("b", 330, 0.4), ("c", 440, 0.2)),
                        "pair_id,content,style,target\nab,a.wav,b.wav,\n"
                        "bc,b.wav,c.wav,\nca,c.wav,a.wav,b.wav\n")
    assert main(["report", str(store), "-o", str(tmp_path / "rep")]) == 0
    out = tmp_path / "wds"
    assert export(store, out, "webdataset", "--shard-size", "1", "--report",
                  str(tmp_path / "rep")) == 0
    assert "dtype: float64" in (out / "README.md").read_text()
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.features["json"]["lsd_db"].dtype == "float64"
    assert ds.features["json"]["seed"].dtype == "int64"
    got = {row["__key__"]: row["json"]["lsd_db"] for row in ds}
    assert got["ab"] is None and got["bc"] is None and got["ca"] > 0
    assert ds[0]["wav"] is not None  # the audio typed too
    # the card is the export's own file: a format switch with --overwrite removes it
    assert export(store, out, "wav", "--overwrite") == 0
    assert not (out / "README.md").exists()


def test_parquet_labels_empty_in_the_first_row_group_are_text_not_float(store, tmp_path):
    """A label missing for every pair of the first row group typed the column float64, and
    the first labelled pair then failed the export ("Could not convert 'x' with type str")."""
    import pyarrow.parquet as pq

    labels = tmp_path / "labels.csv"
    labels.write_text("pair_id,style_label\nca,Violin\n")
    out = tmp_path / "pq"
    assert export(store, out, "parquet", "--shard-size", "1", "--labels", str(labels)) == 0
    table = pq.read_table(out / "data.parquet")
    assert str(table.schema.field("style_label").type) == "string"
    assert dict(zip(table.column("pair_id").to_pylist(),
                    table.column("style_label").to_pylist())) == {"ab": None, "bc": None,
                                                                  "ca": "Violin"}


def test_a_full_disk_when_the_export_takes_its_lock_says_free_space(store, tmp_path,
                                                                    monkeypatch, capsys):
    import errno

    from hpc_nst.batch.lock import StoreLock

    def full(self, text):  # noqa: ANN001, ANN202
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(StoreLock, "_create", full)
    assert export(store, tmp_path / "full", "wav") == 2
    err = capsys.readouterr().err
    assert "cannot take the export folder's lock: No space left on device; free space there " \
           "and rerun" in err


def test_a_readme_of_the_users_own_is_kept_and_the_card_then_left_out(store, tmp_path,
                                                                       caplog):
    """The dataset card overwrote a README.md the user had edited (a licence added) without a
    word, and a README.md of the user's own was refused as a file "one per done pair"."""
    out = tmp_path / "wds"
    assert export(store, out, "webdataset") == 0
    card = (out / "README.md").read_text()
    assert export(store, out, "webdataset") == 0  # its own card, unchanged: written again
    assert (out / "README.md").read_text() == card
    (out / "README.md").write_text(card + "\nLicence: CC-BY 4.0\n")
    with caplog.at_level("WARNING"):
        assert export(store, out, "webdataset") == 0
    assert (out / "README.md").read_text().endswith("Licence: CC-BY 4.0\n")
    assert "README.md there is not this export's card" in caplog.text
    assert export(store, out, "webdataset") == 0  # and stays the user's: kept, not removed
    assert (out / "README.md").read_text().endswith("Licence: CC-BY 4.0\n")
    # a complete export's card without a digest (made before the digest was kept): edited
    # there, it was replaced; only an export that stopped before recording one is trusted
    (out / "README.md").unlink()
    assert export(store, out, "webdataset") == 0 and (out / "README.md").read_text() == card
    meta = json.loads((out / ".export.json").read_text())
    del meta["card_sha256"]
    (out / ".export.json").write_text(json.dumps(meta))
    (out / "README.md").write_text("# mine\n")
    assert export(store, out, "webdataset") == 0
    assert (out / "README.md").read_text() == "# mine\n"
    link = tmp_path / "linked"  # a README.md link, even a dangling one, is the user's
    assert export(store, link, "webdataset") == 0
    (link / "README.md").unlink()
    (link / "README.md").symlink_to(tmp_path / "nowhere.md")
    assert export(store, link, "webdataset") == 0 and (link / "README.md").is_symlink()
    # a folder an earlier release exported into (no card), where the user wrote a README.md:
    # refused as "file(s) named as this export names its outputs (one per done pair)"
    own = tmp_path / "own"
    assert export(store, own, "webdataset") == 0
    meta = json.loads((own / ".export.json").read_text())
    meta["files"] = [f for f in meta["files"] if f != "README.md"]
    del meta["card_sha256"]
    (own / ".export.json").write_text(json.dumps(meta))
    (own / "README.md").write_text("my notes\n")
    assert export(store, own, "webdataset") == 0
    assert (own / "README.md").read_text() == "my notes\n"
