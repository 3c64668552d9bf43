"""An export never pairs one audio with another's metadata: field names that would overwrite
the audio are renamed, a rerun rewrites what changed in the store and removes what is no
longer exported, and ``--report`` rows come from this store's own report."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hpc_nst.batch.reader import iter_pairs, store_info
from hpc_nst.cli import main
from tests.batch.conftest import SR, tone

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def inputs(tmp_path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for name, f0, sec in (("a", 220, 0.3), ("b", 330, 0.4), ("c", 440, 0.2)):
        sf.write(d / f"{name}.wav", tone(f0, sec), SR)
    (d / "m.csv").write_text("pair_id,content,style,audio,device,meta_device\n"
                             "ab,a.wav,b.wav,x.wav,zoom,h4n\n"
                             "bc,b.wav,c.wav,y.wav,zoom,h5\n"
                             "ca,c.wav,a.wav,z.wav,tascam,dr40\n")
    return d


def run(manifest: Path, store: Path, job: str) -> None:
    assert main(["run", str(manifest), "-o", str(store), "--job", str(ROOT / "jobs" / job),
                 "--workers", "1", "--progress-interval", "0"]) == 0


def stored(store: Path) -> dict[str, np.ndarray]:
    return {p.pair_id: p.audio for p in iter_pairs(store_info(store)) if p.audio is not None}


def export(store: Path, out: Path, fmt: str, *extra: str) -> int:
    return main(["export", str(store), "-o", str(out), "--format", fmt, *extra])


def test_a_metadata_column_never_replaces_the_audio_or_another_column(inputs, tmp_path):
    import pyarrow.parquet as pq

    store = tmp_path / "s.zarr"
    run(inputs / "m.csv", store, "content-copy.toml")
    assert export(store, tmp_path / "pq", "parquet") == 0
    rows = {r["pair_id"]: r for r in pq.read_table(tmp_path / "pq" / "data.parquet").to_pylist()}
    audio, rate = sf.read(io.BytesIO(rows["ab"]["audio"]["bytes"]), dtype="float32")
    np.testing.assert_array_equal(audio, stored(store)["ab"])  # the audio, not "x.wav"
    assert rows["ab"]["meta_audio"] == "x.wav"
    # `device` (an export field) is renamed, and must not land on the `meta_device` column
    assert rows["ab"]["device"] == "cpu" and rows["ab"]["meta_device"] == "h4n"
    assert rows["ab"]["meta_device_2"] == "zoom"


def test_a_rerun_rewrites_changed_audio_and_removes_what_is_left_out(inputs, tmp_path, capsys):
    store, out = tmp_path / "s.zarr", tmp_path / "af"
    run(inputs / "m.csv", store, "content-copy.toml")
    assert export(store, out, "audiofolder") == 0
    assert export(store, out, "audiofolder") == 0
    assert "kept 3 existing with the same audio" in capsys.readouterr().out
    # a file cut short (or replaced) since is written again, not trusted to its record
    victim = sorted((out / "data").glob("*.wav"))[0] if (out / "data").is_dir() else \
        sorted(out.rglob("*.wav"))[0]
    whole = victim.read_bytes()
    victim.write_bytes(whole[:1000])
    assert export(store, out, "audiofolder") == 0
    assert "kept 2 existing with the same audio" in capsys.readouterr().out
    assert victim.read_bytes() == whole
    # the store made again at the same path by another job: every file is rewritten
    shutil.rmtree(store)
    run(inputs / "m.csv", store, "style-copy.toml")
    assert export(store, out, "audiofolder") == 0
    assert "kept" not in capsys.readouterr().out
    now = stored(store)
    for line in (out / "metadata.jsonl").read_text().splitlines():
        row = json.loads(line)
        audio, _ = sf.read(out / row["file_name"], dtype="float32")
        np.testing.assert_array_equal(audio, now[row["pair_id"]])
        assert row["method"] == "style-copy"
    # a narrower --where: the files of the pairs left out go, so the folder is this export
    assert export(store, out, "audiofolder", "--where", "pair_id != 'bc'") == 0
    assert "removed 1 of an earlier export" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["ab.wav", "ca.wav"]
    # another codec: the old files go too
    assert export(store, out, "audiofolder", "--codec", "flac") == 0
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["ab.flac", "bc.flac", "ca.flac"]


def test_report_rows_come_from_this_stores_own_report(inputs, tmp_path, capsys):
    first, second = tmp_path / "one" / "s.zarr", tmp_path / "two" / "s.zarr"
    run(inputs / "m.csv", first, "content-copy.toml")
    run(inputs / "m.csv", second, "style-copy.toml")
    report = tmp_path / "report"
    assert main(["report", str(first), str(second), "-o", str(report), "--metrics",
                 "spectral", "--quiet"]) == 0
    labels = {s["store"]: s["label"] for s in
              json.loads((report / "stores.json").read_text())}
    assert len(set(labels.values())) == 2  # both named "s": two labels
    table = pd.read_parquet(report / "pairs.parquet")
    own = {store: {r.pair_id: r.bandwidth_ratio for r in
                   table[table.job == labels[str(store.resolve())]].itertuples()}
           for store in (first, second)}
    assert own[first] != own[second]  # so that taking the other's rows would show
    for store in (first, second):
        out = tmp_path / f"x-{store.parent.name}"
        assert export(store, out, "audiofolder", "--report", str(report)) == 0
        rows = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
        assert {r["pair_id"]: r["bandwidth_ratio"] for r in rows} == own[store]
    # a store of that name made again since: the report is stale, and says so
    shutil.rmtree(second)
    run(inputs / "m.csv", second, "content-copy.toml")
    capsys.readouterr()
    assert export(second, tmp_path / "stale", "audiofolder", "--report", str(report)) == 2
    assert "made from an earlier store" in capsys.readouterr().err
    other = tmp_path / "three" / "s.zarr"
    run(inputs / "m.csv", other, "content-copy.toml")
    assert export(other, tmp_path / "none", "audiofolder", "--report", str(report)) == 2
    assert "it does not cover" in capsys.readouterr().err


def test_webdataset_takes_pair_ids_longer_than_a_ustar_name(inputs, tmp_path):
    import webdataset as wds

    long_id = "Philharmonia_violin_A4_forte_arco-normal__" + "x" * 130
    (inputs / "long.csv").write_text(f"pair_id,content,style\n{long_id},a.wav,b.wav\n"
                                     "short,b.wav,c.wav\n")
    store, out = tmp_path / "s.zarr", tmp_path / "wds"
    run(inputs / "long.csv", store, "content-copy.toml")
    assert export(store, out, "webdataset") == 0
    items = list(wds.WebDataset(str(out / "shard-000000.tar"), shardshuffle=False).decode())
    assert sorted(i["json"]["pair_id"] for i in items) == sorted([long_id, "short"])
    assert {i["__key__"] for i in items} == {long_id, "short"}


def test_plain_files_carry_their_metadata_and_load_as_an_audiofolder(inputs, tmp_path):
    import datasets

    store, out = tmp_path / "s.zarr", tmp_path / "flac"
    run(inputs / "m.csv", store, "content-copy.toml")
    assert export(store, out, "flac") == 0
    ds = datasets.load_dataset("audiofolder", data_dir=str(out), split="train")
    assert sorted(ds["pair_id"]) == ["ab", "bc", "ca"] and "meta_audio" in ds.column_names
    now = stored(store)
    for row in ds:
        samples = row["audio"].get_all_samples()
        np.testing.assert_allclose(samples.data.numpy()[0], now[row["pair_id"]], atol=2.0**-22)


def test_plain_files_never_replace_a_metadata_file_they_did_not_write(inputs, tmp_path, capsys):
    store, out = tmp_path / "s.zarr", tmp_path / "mine"
    run(inputs / "m.csv", store, "content-copy.toml")
    out.mkdir()
    (out / "metadata.jsonl").write_text("my own\n")
    assert export(store, out, "wav") == 2
    assert "holds no hpc-nst export" in capsys.readouterr().err
    assert (out / "metadata.jsonl").read_text() == "my own\n"
    (out / "metadata.jsonl").unlink()
    (out / "notes.txt").write_text("other files are fine")
    assert export(store, out, "wav") == 0
