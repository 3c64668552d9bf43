"""``hpc-nst export``: each format read back with the library its users load it with."""

from __future__ import annotations

import glob
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import xarray as xr

from hpc_nst.batch.reader import iter_pairs, store_info
from hpc_nst.cli import main
from tests.batch.conftest import SR, TINY, tone

pytestmark = pytest.mark.slow
META = ("style_label", "split", "status", "job", "file_name")  # the last three clash


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A store of 3 done pairs (one id with a dot) and one failed pair, with metadata."""
    d = tmp_path_factory.mktemp("export")
    for name, f0, sec in (("a", 220, 0.4), ("b", 330, 0.6), ("c", 440, 0.3)):
        sf.write(d / f"{name}.wav", tone(f0, sec), SR)
    (d / "m.csv").write_text(
        "pair_id,content,style,style_label,split,status,job,file_name\n"
        "ab,a.wav,b.wav,harp,train,x,j1,src/a.wav\n"
        "v1.2,b.wav,c.wav,violin,test,y,j2,src/b.wav\n"
        "ca,c.wav,a.wav,harp,train,z,j3,src/c.wav\n"
        "lost,gone.wav,a.wav,harp,train,w,j4,src/d.wav\n")
    out = d / "s.zarr"
    code = main(["run", str(d / "m.csv"), "-o", str(out), "--skip-invalid", "--workers", "1",
                 "--progress-interval", "0", *[x for s in TINY for x in ("--set", s)]])
    assert code == 1  # one failed pair
    return out


def _stored(store: Path) -> dict[str, np.ndarray]:
    return {p.pair_id: p.audio for p in iter_pairs(store_info(store)) if p.audio is not None}


def _export(store: Path, out: Path, fmt: str, *extra: str) -> int:
    return main(["export", str(store), "-o", str(out), "--format", fmt, *extra])


def test_audiofolder_loads_with_datasets(store, tmp_path, capsys, caplog):
    import datasets
    out = tmp_path / "af"
    assert _export(store, out, "audiofolder") == 0
    assert "manifest column(s) renamed in the export, as their names are the export's own " \
           "fields (or read as audiofolder file references): status -> meta_status, job -> " \
           "meta_job, file_name -> file_name_meta" in caplog.text
    assert "wrote 3 item(s) as audiofolder" in capsys.readouterr().out
    ds = datasets.load_dataset("audiofolder", data_dir=str(out), split="train")
    assert ds.num_rows == 3
    assert {"pair_id", "content", "style", "style_label", "split", "meta_status", "meta_job",
            "file_name_meta", "seed",
            "job", "method", "job_digest", "loss_total", "loss_style"} <= set(ds.column_names)
    stored = _stored(store)
    for row in ds:
        samples = row["audio"].get_all_samples()
        assert samples.sample_rate == SR
        np.testing.assert_array_equal(samples.data.numpy()[0], stored[row["pair_id"]])
    by_id = {r["pair_id"]: r for r in ds.remove_columns("audio")}
    assert by_id["v1.2"]["style_label"] == "violin" and by_id["v1.2"]["meta_status"] == "y"
    # metadata never overwrites an export field: "job" stays the store's, file_name the audio
    assert by_id["v1.2"]["job"] == "s" and by_id["v1.2"]["meta_job"] == "j2"
    assert by_id["v1.2"]["file_name_meta"] == "src/b.wav"
    assert by_id["ab"]["split"] == "train" and by_id["ab"]["loss_total"] > 0
    assert "lost" not in by_id
    card = json.loads((out / ".export.json").read_text())
    assert card["format"] == "audiofolder" and card["not_done"] == 1
    assert card["metadata_columns"] == list(META) and card["job"]["method"] == "nst"
    # Rerun: same bytes; another store's export there is refused.
    before = (out / "metadata.jsonl").read_bytes()
    assert _export(store, out, "audiofolder") == 0
    assert (out / "metadata.jsonl").read_bytes() == before
    assert _export(store, out, "parquet") == 2
    assert "holds an export of" in capsys.readouterr().err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "shard-000000.tar").write_bytes(b"someone else's")
    assert _export(store, foreign, "webdataset") == 2
    assert "is not empty and holds no hpc-nst export" in capsys.readouterr().err
    assert (foreign / "shard-000000.tar").read_bytes() == b"someone else's"


def test_parquet_text_columns_do_not_depend_on_the_first_rows():
    from hpc_nst.export.formats import _arrow_type

    assert str(_arrow_type("judge_class", [None, None])) == "string"
    assert str(_arrow_type("seed", [None])) == "int64"
    assert str(_arrow_type("lsd_db", [None, 1.5])) == "double"


def test_parquet_and_the_webdataset_card_type_every_field_alike():
    """Both containers declare types (Parquet's schema, the card's YAML): one rule serves
    both, so a field loads as the same type from either."""
    import re

    from hpc_nst.export.formats import _arrow_type
    from hpc_nst.export.webdataset import webdataset_card

    values = {"judge_class": [None], "seed": [None], "lsd_db": [None, 1.5], "count": [1, 2],
              "mixed": [1, 2.5], "note": ["a", None], "empty": [None]}
    card = webdataset_card("wav", {k: {type(v) for v in vs} for k, vs in values.items()})
    declared = dict(re.findall(r'- name: "(\w+)"\n\s+dtype: (\w+)', card))
    arrow = {k: str(_arrow_type(k, vs)).replace("double", "float64") for k, vs in values.items()}
    assert declared == arrow
    assert arrow == {"judge_class": "string", "seed": "int64", "lsd_db": "float64",
                     "count": "int64", "mixed": "float64", "note": "string", "empty": "float64"}


def test_parquet_reads_with_pyarrow_and_datasets(store, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "pq"
    assert _export(store, out, "parquet", "--shard-size", "2") == 0
    table = pq.read_table(out / "data.parquet")
    assert table.num_rows == 3 and pq.ParquetFile(out / "data.parquet").num_row_groups == 2
    assert table.schema.field("seed").type == "int64"
    assert table.schema.field("loss_total").type == "double"
    stored = _stored(store)
    for row in table.to_pylist():
        audio, rate = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        assert rate == SR
        np.testing.assert_array_equal(audio, stored[row["pair_id"]])
        assert row["split"] in ("train", "test")
    import datasets
    ds = datasets.load_dataset("parquet", data_files=str(out / "data.parquet"), split="train")
    assert isinstance(ds.features["audio"], datasets.Audio)
    assert ds[0]["audio"].get_all_samples().sample_rate == SR


def test_webdataset_shards_read_back(store, tmp_path):
    import webdataset as wds
    out = tmp_path / "wds"
    assert _export(store, out, "webdataset", "--shard-size", "2", "--codec", "flac") == 0
    shards = sorted(glob.glob(str(out / "shard-*.tar")))
    assert [Path(s).name for s in shards] == ["shard-000000.tar", "shard-000001.tar"]
    items = list(wds.WebDataset(shards, shardshuffle=False).decode())
    assert len(items) == 3
    stored = _stored(store)
    for item in items:
        meta = item["json"]
        assert item["__key__"] == meta["pair_id"].replace(".", "_")
        audio, rate = sf.read(io.BytesIO(item["flac"]), dtype="float32")
        assert rate == SR
        np.testing.assert_allclose(audio, stored[meta["pair_id"]], atol=2.0**-22)
        assert meta["style_label"] in ("harp", "violin") and meta["job"] == "s"
    first = [Path(s).read_bytes() for s in shards]
    assert _export(store, out, "webdataset", "--shard-size", "2", "--codec", "flac") == 0
    assert [Path(s).read_bytes() for s in shards] == first  # reruns: the same bits
    assert _export(store, out, "webdataset", "--shard-size", "5", "--codec", "flac") == 0
    assert sorted(p.name for p in out.glob("shard-*.tar")) == ["shard-000000.tar"]


def test_labels_beside_the_manifest_travel_with_the_items(tmp_path, capsys):
    """``hpc-nst dataset triplets`` writes its instrument labels to labels.csv beside the
    manifest: the report showed them, the export left them behind."""
    import pyarrow.parquet as pq
    import webdataset as wds

    for name, f0 in (("a", 220), ("b", 330), ("c", 440)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.3), SR)
    (tmp_path / "m.csv").write_text("pair_id,content,style\np1,a.wav,b.wav\np2,b.wav,c.wav\n"
                                    "p3,c.wav,a.wav\n")
    (tmp_path / "labels.csv").write_text("pair_id,content_label,style_label,style_program\n"
                                         "p1,Flute,Harp,46\np2,Harp,Violin,40\np3,,Flute,73\n")
    fix = tmp_path / "fix.csv"
    fix.write_text("pair_id,style_label\np2,Viola\n")
    store = tmp_path / "l.zarr"
    assert main(["run", str(tmp_path / "m.csv"), "-o", str(store), "--workers", "1",
                 "--progress-interval", "0", *[x for s in TINY for x in ("--set", s)]]) == 0
    assert _export(store, tmp_path / "pq", "parquet", "--labels", str(fix), "--where",
                   "style_label != 'Flute'") == 0
    table = pq.read_table(tmp_path / "pq" / "data.parquet").to_pydict()
    assert table["pair_id"] == ["p1", "p2"]
    assert table["content_label"] == ["Flute", "Harp"]
    assert table["style_label"] == ["Harp", "Viola"]  # --labels wins over labels.csv
    assert "style_program" not in table  # only the label columns are read
    # the card names every label file read: labels.csv found beside the manifest too (it
    # said "labels": [fix.csv] only)
    card = json.loads((tmp_path / "pq" / ".export.json").read_text())
    assert card["labels"] == [str(tmp_path / "labels.csv"), str(fix)]
    assert _export(store, tmp_path / "wds", "webdataset") == 0
    metas = {m["pair_id"]: m for m in (x["json"] for x in wds.WebDataset(
        sorted(glob.glob(str(tmp_path / "wds" / "*.tar"))), shardshuffle=False).decode())}
    # (a label without a value is "" in webdataset's JSON: `datasets` types a field from the
    # first items, and null there failed the labelled ones after it)
    assert metas["p3"]["content_label"] == "" and metas["p3"]["style_label"] == "Flute"
    assert metas["p2"]["style_label"] == "Violin"
    capsys.readouterr()
    assert _export(store, tmp_path / "x", "wav", "--labels", str(tmp_path / "none.csv")) == 2
    assert "--labels" in capsys.readouterr().err and not (tmp_path / "x").exists()
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,style_label\np1,Oboe\n")
    assert _export(store, tmp_path / "x", "wav", "--labels", str(wrong)) == 2
    assert f"--labels {wrong}: no pair_id column (its header is id,style_label)" in \
        capsys.readouterr().err


def test_labels_of_some_pairs_keep_the_manifest_columns_of_the_others(store, tmp_path):
    import pyarrow.parquet as pq

    fix = tmp_path / "fix.csv"
    fix.write_text("pair_id,style_label\nab,cello\n")
    assert _export(store, tmp_path / "pq", "parquet", "--labels", str(fix)) == 0
    table = pq.read_table(tmp_path / "pq" / "data.parquet").to_pydict()
    got = dict(zip(table["pair_id"], table["style_label"]))
    assert got == {"ab": "cello", "v1.2": "violin", "ca": "harp"}


def test_report_metrics_travel_with_the_items(store, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["report", str(store), "-o", str(report), "--metrics", "spectral",
                 "--quiet"]) == 0
    out = tmp_path / "af"
    assert _export(store, out, "audiofolder", "--report", str(report)) == 0
    rows = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    assert all("bandwidth_ratio" in r and r["bandwidth_ratio"] > 0 for r in rows)
    assert _export(store, tmp_path / "x", "parquet", "--report", str(tmp_path)) == 2
    assert "no pairs.parquet or pairs.csv there" in capsys.readouterr().err


def test_a_report_older_than_the_done_pairs_is_said(store, tmp_path, caplog):
    """A report made while pairs were pending gave them no metrics; `--where` on a metric
    then left them out as if they had failed it, without a word."""
    import pandas as pd

    report = tmp_path / "report"
    assert main(["report", str(store), "-o", str(report), "--metrics", "spectral",
                 "--quiet"]) == 0
    table = pd.read_parquet(report / "pairs.parquet")
    assert set(table["status"]) == {"done", "failed"}
    table.loc[table["pair_id"] == "ab", "status"] = "pending"  # as if reported before done
    table.loc[table["pair_id"] == "ab", "bandwidth_ratio"] = float("nan")
    assert table.loc[table["pair_id"] == "ca", "audio_digest"].str.len().item() > 8
    table.loc[table["pair_id"] == "ca", "audio_digest"] = "0" * 16  # an earlier output of ca
    table.to_parquet(report / "pairs.parquet")
    (report / "pairs.csv").unlink(missing_ok=True)
    assert _export(store, tmp_path / "x", "wav", "--report", str(report), "--where",
                   "bandwidth_ratio > 0") == 0
    assert "1 done pair(s) have no metrics in the report (it was made before they were " \
           "done?), e.g. ab" in caplog.text
    assert "1 done pair(s) were computed again after the report (their audio is not the one " \
           "it measured), e.g. ca" in caplog.text
    assert sorted(p.stem for p in (tmp_path / "x").glob("*.wav")) == ["v1.2"]


def test_plain_files_keep_what_exists(store, tmp_path, capsys):
    out = tmp_path / "wav"
    assert _export(store, out, "wav") == 0
    assert "wrote 3 file(s)" in (msg := capsys.readouterr().out)
    assert "1 pair(s) not done" in msg
    assert sorted(p.name for p in out.glob("*.wav")) == ["ab.wav", "ca.wav", "v1.2.wav"]
    whole = (out / "ab.wav").read_bytes()
    assert _export(store, out, "wav") == 0
    assert "kept 3 existing" in capsys.readouterr().out
    (out / "ab.wav").write_bytes(b"mine")  # changed since: not the audio the record names
    assert _export(store, out, "wav") == 0
    assert "wrote 1 file(s)" in (msg := capsys.readouterr().out) and "kept 2 existing" in msg
    assert (out / "ab.wav").read_bytes() == whole
    # --codec with a plain-file format: it wrote WAV without a word
    assert _export(store, tmp_path / "c", "wav", "--codec", "flac") == 2
    assert "--codec flac with --format wav" in capsys.readouterr().err
    assert _export(store, tmp_path / "c", "flac", "--codec", "flac") == 0


def test_where_keeps_the_matching_pairs_in_every_format(store, tmp_path, capsys):
    import pyarrow.parquet as pq

    report = tmp_path / "report"
    assert main(["report", str(store), "-o", str(report), "--metrics", "spectral",
                 "--quiet"]) == 0
    out = tmp_path / "harp"
    assert _export(store, out, "audiofolder", "--where", "style_label == 'harp'") == 0
    assert "1 pair(s) left out by --where" in capsys.readouterr().out
    rows = [json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["pair_id"] for r in rows) == ["ab", "ca"]
    assert sorted(p.name for p in (out / "audio").iterdir()) == ["ab.wav", "ca.wav"]
    card = json.loads((out / ".export.json").read_text())
    assert card["where"] == "style_label == 'harp'" and card["left_out_by_where"] == 1
    # a report metric, through Parquet: the matching rows only, read back with pyarrow
    assert _export(store, tmp_path / "all", "parquet", "--report", str(report)) == 0
    table = pq.read_table(tmp_path / "all" / "data.parquet").to_pydict()
    ratios = dict(zip(table["pair_id"], table["bandwidth_ratio"]))
    cut = sorted(ratios.values())[1]
    assert _export(store, tmp_path / "wide", "parquet", "--report", str(report),
                   "--where", f"bandwidth_ratio >= {cut!r}") == 0
    kept = pq.read_table(tmp_path / "wide" / "data.parquet").column("pair_id").to_pylist()
    assert sorted(kept) == sorted(p for p, r in ratios.items() if r >= cut) and len(kept) == 2
    # plain files: only the matching ones written
    assert _export(store, tmp_path / "wav", "wav", "--where", "pair_id == 'v1.2'") == 0
    assert [p.name for p in (tmp_path / "wav").glob("*.wav")] == ["v1.2.wav"]
    capsys.readouterr()


def test_where_refuses_before_writing_anything(store, tmp_path, capsys):
    for fmt in ("parquet", "audiofolder", "wav"):
        out = tmp_path / fmt
        assert _export(store, out, fmt, "--where", "judge_top1 == 1") == 2
        err = capsys.readouterr().err
        assert "'judge_top1' is not a field of this export" in err and "add --report DIR" in err
        assert not out.exists()  # not even the folder: the corrected rerun is not refused
        assert _export(store, out, fmt, "--where", "style_label == 'harp'") == 0
        assert "1 pair(s) left out by --where" in capsys.readouterr().out
    assert _export(store, tmp_path / "y", "wav", "--where", "open('f')") == 2
    assert "Call is not allowed" in capsys.readouterr().err and not (tmp_path / "y").exists()


@pytest.mark.parametrize("fmt", ["webdataset", "audiofolder"])
def test_where_matching_nothing_gives_an_empty_dataset(store, tmp_path, fmt, capsys):
    out = tmp_path / fmt
    assert _export(store, out, fmt, "--where", "pair_id == 'none of them'") == 0
    card = json.loads((out / ".export.json").read_text())
    assert card["items"] == 0 and card["left_out_by_where"] == 3
    assert "3 pair(s) left out by --where" in capsys.readouterr().out


def test_where_matching_nothing_writes_no_schemaless_parquet(store, tmp_path, capsys):
    out = tmp_path / "pq"
    assert _export(store, out, "parquet", "--where", "pair_id == 'none of them'") == 2
    assert "every done pair was left out (by --where" in capsys.readouterr().err
    assert not out.exists()  # refused before the folder is made


def test_spectral_convergence_is_empty_where_no_griffin_lim_ran(store, tmp_path):
    """The report leaves it blank for methods that record no losses (eq, sampler, ...):
    0.0 there would read as a perfect reconstruction. NST pairs keep theirs."""
    import pyarrow.parquet as pq

    assert _export(store, tmp_path / "nst", "parquet") == 0
    nst = pq.read_table(tmp_path / "nst" / "data.parquet").column(
        "spectral_convergence").to_pylist()
    assert len(nst) == 3 and all(v is not None and v > 0 for v in nst)
    eq = tmp_path / "eq.zarr"
    sf.write(tmp_path / "a.wav", tone(220, 0.3), SR)
    sf.write(tmp_path / "b.wav", tone(330, 0.3), SR)
    (tmp_path / "m.csv").write_text("pair_id,content,style\nab,a.wav,b.wav\nba,b.wav,a.wav\n")
    root = Path(__file__).resolve().parents[2]
    assert main(["run", str(tmp_path / "m.csv"), "-o", str(eq), "--job",
                 str(root / "jobs" / "eq.toml"), "--workers", "1",
                 "--progress-interval", "0"]) == 0
    assert _export(eq, tmp_path / "eq-pq", "parquet") == 0
    table = pq.read_table(tmp_path / "eq-pq" / "data.parquet")
    assert table.column("spectral_convergence").to_pylist() == [None, None]
    assert str(table.schema.field("spectral_convergence").type) == "double"
    assert _export(eq, tmp_path / "eq-af", "audiofolder") == 0
    rows = [json.loads(x) for x in (tmp_path / "eq-af" / "metadata.jsonl").read_text()
            .splitlines()]
    assert [r["spectral_convergence"] for r in rows] == [None, None]
    # the store itself (opened with xarray, as the README says) and transfer's JSON: NaN /
    # null, not 0.0 ("perfectly consistent")
    assert np.isnan(xr.open_zarr(eq).spectral_convergence.values).all()
    assert main(["transfer", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"), "--job",
                 str(root / "jobs" / "eq.toml"), "-o", str(tmp_path / "t.wav"),
                 "--quiet"]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["spectral_convergence"] is None


def test_docs_name_the_rename_of_a_file_name_column():
    """``file_name`` (and ``*_file_name``) metadata becomes ``file_name_meta``, not
    ``meta_file_name``: an audiofolder reads any ``*_file_name`` column as a file path."""
    from hpc_nst.export.items import export_names

    assert export_names({"file_name": "file_name", "audio": "audio"}, {"audio"}) == {
        "file_name": "file_name_meta", "audio": "meta_audio"}
    docs = (Path(__file__).resolve().parents[2] / "docs" / "store.md").read_text()
    assert "`file_name_meta`" in docs and "meta_file_name" not in docs


def test_metrics_measured_against_an_earlier_target_are_not_exported(tmp_path, caplog):
    """After a target changed in the manifest (recorded by the rerun), `export --report`
    attached the old target's LSD to the new target: the audio digest had not changed."""
    import pandas as pd

    for name, f0 in (("a", 220), ("b", 330), ("t", 440), ("u", 550)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.4), SR)
    manifest = tmp_path / "m.csv"
    manifest.write_text("pair_id,content,style,target\np1,a.wav,b.wav,t.wav\n"
                        "p2,b.wav,a.wav,t.wav\n")
    store, report = tmp_path / "s.zarr", tmp_path / "report"
    run = ["run", str(manifest), "-o", str(store), "--job", "eq", "--quiet"]
    assert main(run) == 0
    assert main(["report", str(store), "-o", str(report), "--metrics", "target,spectral",
                 "--quiet"]) == 0
    assert pd.read_parquet(report / "pairs.parquet")["lsd_db"].notna().all()
    manifest.write_text("pair_id,content,style,target\np1,a.wav,b.wav,u.wav\n"
                        "p2,b.wav,a.wav,t.wav\n")
    assert main(run) == 0
    out = tmp_path / "pq"
    assert _export(store, out, "parquet", "--report", str(report)) == 0
    rows = pd.read_parquet(next(out.glob("*.parquet"))).set_index("pair_id")
    assert rows.loc["p1", "target"] == "u.wav" and pd.isna(rows.loc["p1", "lsd_db"])
    assert rows.loc["p1", "bandwidth_ratio"] > 0  # not measured against the target: kept
    assert rows.loc["p2", "lsd_db"] > 0
    assert "1 done pair(s) have another target than when the report measured them, e.g. p1" \
        in caplog.text


def test_a_label_file_that_names_no_pair_of_the_store_is_warned_about(store, tmp_path,
                                                                      caplog):
    """`export --labels` with another dataset's label file exited 0 without a word."""
    other = tmp_path / "other.csv"
    other.write_text("pair_id,style_label\nzzz,violin\nab,cello\n")
    assert _export(store, tmp_path / "x", "wav", "--labels", str(other)) == 0
    assert "--labels" not in caplog.text  # a file of a larger dataset: normal
    other.write_text("pair_id,style_label\nzzz,violin\n")
    assert _export(store, tmp_path / "y", "wav", "--labels", str(other)) == 0
    assert f"--labels {other}: none of its 1 row(s) names a pair of this store: it labels " \
        "nothing here" in caplog.text


def test_report_and_export_name_pairs_whose_inputs_changed_since(tmp_path, caplog, capsys):
    """`run` warned that a content file changed since its pair was computed, but `report`
    measured the new file's side in silence and `export` named it as the pair's content."""
    import pandas as pd

    for name, f0 in (("a", 220), ("b", 330)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.4), SR)
    manifest = tmp_path / "m.csv"
    manifest.write_text("pair_id,content,style\np1,a.wav,b.wav\np2,b.wav,a.wav\n")
    store = tmp_path / "s.zarr"
    assert main(["run", str(manifest), "-o", str(store), "--job", "eq", "--quiet"]) == 0
    sf.write(tmp_path / "a.wav", tone(250, 0.5), SR)  # p1's content replaced (p2's style)
    report = tmp_path / "rep"
    assert main(["report", str(store), "-o", str(report), "--metrics", "spectral",
                 "--quiet"]) == 0
    assert "2 done pair(s) were computed from input files that changed since" in \
        capsys.readouterr().out
    notes = pd.read_csv(report / "pairs.csv").set_index("pair_id")["notes"]
    assert all("input files changed since it was computed" in str(notes[p]) for p in
               ("p1", "p2"))
    assert _export(store, tmp_path / "x", "wav") == 0
    assert "2 done pair(s) were computed from input files that changed since" in caplog.text


def test_codec_flac_alone_writes_flac_files_and_a_label_file_without_pair_id_is_named(
        store, tmp_path, capsys):
    """`--codec flac` without --format was refused ("with --format wav"), and a label file
    whose id column was misnamed was said to have "no label columns"."""
    out = tmp_path / "f"
    assert main(["export", str(store), "-o", str(out), "--codec", "flac"]) == 0
    assert sorted(p.suffix for p in out.iterdir() if not p.name.startswith(".")) == \
        [".flac"] * len(list(out.glob("*.flac"))) + [".jsonl"]
    labels = tmp_path / "l.csv"
    labels.write_text("pair,style_label\nab,harp\n")
    assert main(["export", str(store), "-o", str(tmp_path / "g"), "--labels",
                 str(labels)]) == 2
    assert "no pair_id column (its header is pair,style_label)" in capsys.readouterr().err


def test_an_export_folder_that_cannot_be_made_is_one_line_naming_it(store, capsys):
    """It printed "[Errno 2] No such file or directory: '/proc/out'" and nothing to do."""
    assert main(["export", str(store), "-o", "/proc/hpc-nst-out"]) == 2
    err = capsys.readouterr().err
    assert "/proc/hpc-nst-out: cannot make the export folder (No such file or directory); " \
           "give a folder you can write" in err


def test_a_sweep_s_per_row_parameters_are_fields_and_filter(tmp_path, store):
    """A manifest's per-row overrides (a style_weight sweep) reached no export: every pair
    had the store's one job_digest, and `--where "style_weight == 1000"` was refused."""
    import pyarrow.parquet as pq

    for name, f0 in (("a", 220), ("b", 330)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.3), SR)
    (tmp_path / "m.csv").write_text("pair_id,content,style,style_weight,iterations\n"
                                    "w10,a.wav,b.wav,10,\nw1000,a.wav,b.wav,1000,\n"
                                    "job,a.wav,b.wav,,\n")
    sweep = tmp_path / "sweep.zarr"
    assert main(["run", str(tmp_path / "m.csv"), "-o", str(sweep), "--workers", "1",
                 "--progress-interval", "0", *[x for s in TINY for x in ("--set", s)]]) == 0
    assert _export(sweep, tmp_path / "pq", "parquet") == 0
    table = pq.read_table(tmp_path / "pq" / "data.parquet").to_pandas().set_index("pair_id")
    assert table["style_weight"].to_dict() == {"w10": 10.0, "w1000": 1000.0, "job": 100.0}
    assert "iterations" not in table  # no row set it: the job's, and not a field
    assert table["params_digest"].nunique() == 3 and table["job_digest"].nunique() == 1
    assert _export(sweep, tmp_path / "w", "wav", "--where", "style_weight == 1000") == 0
    assert [json.loads(x)["pair_id"] for x in
            (tmp_path / "w" / "metadata.jsonl").read_text().splitlines()] == ["w1000"]
    # a store whose rows override nothing has neither field
    assert _export(store, tmp_path / "plain", "parquet") == 0
    plain = pq.read_schema(tmp_path / "plain" / "data.parquet").names
    assert "style_weight" not in plain and "params_digest" not in plain
