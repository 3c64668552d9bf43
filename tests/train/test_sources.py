"""Manifests, NSynth folders and the spectrogram cache: parsing, splits, clear errors."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hpc_nst.cli import main
from hpc_nst.config import STFTConfig
from hpc_nst.train.cache import build_cache
from hpc_nst.train.sources import ManifestError, hashed_split, load_examples

STFT = STFTConfig()


def _rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open() as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_gm_manifest_keeps_its_split(tiny_gm: Path) -> None:
    examples = load_examples(tiny_gm)
    rows = _rows(tiny_gm)
    assert [e.split for e in examples] == [r["split"] for r in rows]
    assert {e.label for e in examples} == {"Acoustic Grand Piano", "Violin", "Flute"}
    assert all(e.path.is_file() for e in examples)


def test_plain_path_label_csv_gets_a_hashed_split(tiny_gm: Path, tmp_path: Path) -> None:
    rows = _rows(tiny_gm)
    plain = _write(tmp_path / "plain.csv", ["path", "label"],
                   [[str(tiny_gm.parent / r["path"]), r["label"]] for r in rows])
    examples = load_examples(plain)
    assert len(examples) == len(rows)
    assert [e.split for e in examples] == [hashed_split(str(tiny_gm.parent / r["path"]))
                                           for r in rows]
    assert {e.split for e in examples} <= {"train", "val", "test"}


def test_bad_rows_are_all_named(tiny_gm: Path, tmp_path: Path) -> None:
    good = _rows(tiny_gm)[0]
    audio = str(tiny_gm.parent / good["path"])
    bad = _write(tmp_path / "bad.csv", ["path", "label", "split"], [
        [audio, "Piano", "train"],
        ["", "Piano", "train"],                      # row 3: empty path
        [audio, "", "train"],                        # row 4: empty label
        [str(tmp_path / "missing.wav"), "Piano", "train"],  # row 5
        [audio, "Piano", "holdout?"],                # row 6: bad split
    ])
    with pytest.raises(ManifestError) as info:
        load_examples(bad)
    msg = str(info.value)
    assert "4 bad row(s)" in msg
    assert "row 3: empty path" in msg
    assert "row 4" in msg and "empty label" in msg
    assert "row 5: audio file not found" in msg and "missing.wav" in msg
    assert "row 6" in msg and "'holdout?'" in msg


def test_missing_columns_and_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="missing column.*label"):
        load_examples(_write(tmp_path / "m.csv", ["path", "instrument"], [["a.wav", "x"]]))
    with pytest.raises(ManifestError, match="manifest not found"):
        load_examples(tmp_path / "nope.csv")


def test_unreadable_audio_names_row_and_file(tiny_gm: Path, tmp_path: Path, capsys) -> None:
    rows = _rows(tiny_gm)[:6]
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio" * 20)
    manifest = _write(tmp_path / "m.csv", ["path", "label", "split"],
                      [[str(tiny_gm.parent / r["path"]), r["label"], r["split"]] for r in rows]
                      + [[str(junk), "Violin", "train"]])
    with pytest.raises(ManifestError) as info:
        build_cache(load_examples(manifest), tmp_path / "cache", STFT)
    assert "m.csv row 8" in str(info.value) and "junk.wav" in str(info.value)
    assert not any((tmp_path / "cache").iterdir())  # no half-built cache left behind
    code = main(["train", str(manifest), "-o", str(tmp_path / "c.pt"), "--width", "4"])
    assert code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "m.csv row 8" in err and "unreadable audio" in err


def test_cache_is_reused_and_pads_short_clips(tiny_gm: Path, tmp_path: Path) -> None:
    rows = _rows(tiny_gm)[:3]
    short = tmp_path / "short.flac"
    import soundfile as sf

    sf.write(short, np.full(8000, 0.1, np.float32), 16000)  # 0.5 s
    manifest = _write(tmp_path / "m.csv", ["path", "label"],
                      [[str(tiny_gm.parent / r["path"]), r["label"]] for r in rows]
                      + [[str(short), "Piano"]])
    examples = load_examples(manifest)
    cache = build_cache(examples, tmp_path / "cache", STFT)
    assert cache.specs.shape == (4, 257, 257) and cache.specs.dtype == np.float16
    assert list(cache.lengths) == [257, 257, 257, 51]
    assert not np.asarray(cache.specs[3, :, 51:]).any()
    said: list[str] = []
    again = build_cache(examples, tmp_path / "cache", STFT, progress=said.append)
    assert again.path == cache.path and "(reused)" in said[0]


def _fake_nsynth(tiny_gm: Path, folder: Path) -> Path:
    """An NSynth-layout folder holding real rendered audio."""
    (folder / "audio").mkdir(parents=True)
    families = {"Acoustic Grand Piano": "keyboard", "Violin": "string", "Flute": "flute"}
    index = {}
    for k, row in enumerate(_rows(tiny_gm)):
        family = families[row["label"]]
        note = f"{family}_acoustic_{k:03d}-{int(row['pitch']):03d}-{int(row['velocity']):03d}"
        shutil.copy(tiny_gm.parent / row["path"], folder / "audio" / f"{note}.wav")
        index[note] = {"note_str": note, "pitch": int(row["pitch"]),
                       "velocity": int(row["velocity"]), "instrument_family_str": family,
                       "instrument_source_str": "acoustic", "instrument_str": f"{family}_{k}"}
    (folder / "examples.json").write_text(json.dumps(index))
    return folder


def test_nsynth_layout(tiny_gm: Path, tmp_path: Path) -> None:
    folder = _fake_nsynth(tiny_gm, tmp_path / "nsynth-test")
    examples = load_examples(folder)
    assert len(examples) == 30
    assert {e.label for e in examples} == {"keyboard", "string", "flute"}
    # Pitch-held-out split: no pitch in both train and test.
    train_p = {e.pitch for e in examples if e.split == "train"}
    test_p = {e.pitch for e in examples if e.split == "test"}
    assert train_p and test_p and not train_p & test_p
    assert load_examples(folder / "examples.json") == examples
    by_source = load_examples(folder, label_key="instrument_source_str")
    assert {e.label for e in by_source} == {"acoustic"}


def test_nsynth_errors(tiny_gm: Path, tmp_path: Path) -> None:
    folder = _fake_nsynth(tiny_gm, tmp_path / "ns")
    victim = sorted((folder / "audio").iterdir())[0]
    victim.unlink()
    with pytest.raises(ManifestError, match=f"entry '{victim.stem}': audio file not found"):
        load_examples(folder)
    with pytest.raises(ManifestError, match="no 'qualities_str'"):
        load_examples(folder, label_key="qualities_str")
    (folder / "examples.json").write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable examples.json"):
        load_examples(folder)
    with pytest.raises(ManifestError, match="not an NSynth folder"):
        load_examples(tmp_path)


def test_cli_trains_on_nsynth_folder(tiny_gm: Path, tmp_path: Path, capsys) -> None:
    folder = _fake_nsynth(tiny_gm, tmp_path / "ns")
    out = tmp_path / "ns.pt"
    assert main(["train", str(folder), "-o", str(out), "--epochs", "1", "--width", "4"]) == 0
    assert "3 classes" in capsys.readouterr().err
    assert (folder / ".hpc_nst_cache").is_dir()
