"""The rendered GM instrument dataset: plan, held-out-pitch split, determinism, CLI."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hpc_nst.cli import main
from hpc_nst.data.gm_dataset import (
    DEFAULT_PROGRAMS,
    MANIFEST_COLUMNS,
    pitch_split,
    plan_program,
    render_gm_dataset,
    split_counts,
)
from hpc_nst.data.soundfont import GM_PROGRAM_NAMES, playable_range


def test_default_classes() -> None:
    assert len(DEFAULT_PROGRAMS) >= 80
    assert not set(DEFAULT_PROGRAMS) & set(range(112, 128))  # no percussive / sound effects


def test_split_counts() -> None:
    assert split_counts(120) == {"train": 84, "val": 12, "test": 24}
    assert split_counts(10) == {"train": 7, "val": 1, "test": 2}
    assert sum(split_counts(7).values()) == 7


@pytest.mark.parametrize("seed", [0, 3])
def test_plans_hold_out_whole_pitches(seed: int) -> None:
    """Every note of a clip comes from its split's pitches; no pitch is in two splits."""
    pitches_by_split: dict[str, set[int]] = {"train": set(), "val": set(), "test": set()}
    for program in DEFAULT_PROGRAMS:
        lo, hi = playable_range(program)
        plans = plan_program(program, 40, seed)
        assert len(plans) == 40
        for plan in plans:
            for pitch, start, end, velocity in plan.notes:
                assert lo <= pitch <= hi and 0 <= start < end <= 2.56 and 1 <= velocity <= 127
                assert pitch_split(pitch, seed) == plan.split
                pitches_by_split[plan.split].add(pitch)
    train, val, test = pitches_by_split.values()
    assert not train & test and not train & val and not val & test
    kinds = {p.kind for p in plan_program(40, 100, seed)}
    assert kinds == {"note", "phrase", "dyad"}


def test_plan_is_deterministic_per_seed_and_program() -> None:
    assert plan_program(40, 20, seed=1) == plan_program(40, 20, seed=1)
    assert plan_program(40, 20, seed=1) != plan_program(40, 20, seed=2)


def test_render_manifest_and_determinism(soundfont: Path, tmp_path: Path) -> None:
    said: list[str] = []
    manifest = render_gm_dataset(tmp_path / "a", [40, 73], per_class=4, seed=0,
                                 progress=said.append)
    assert manifest == tmp_path / "a" / "manifest.csv"
    assert said[0].startswith("[1/2] program  40 Violin") and said[-1].startswith("wrote 8")
    with manifest.open() as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == MANIFEST_COLUMNS
        rows = list(reader)
    assert [r["label"] for r in rows] == ["Violin"] * 4 + ["Flute"] * 4
    for r in rows:
        audio, rate = sf.read(tmp_path / "a" / r["path"], dtype="float32")
        assert rate == 16000 and audio.shape == (40960,)
        assert 0.85 < np.abs(audio).max() <= 0.9 + 1e-3
        assert r["split"] == pitch_split(int(r["pitch"]))
        assert r["label"] == GM_PROGRAM_NAMES[int(r["program"])]
    again = render_gm_dataset(tmp_path / "b", [40, 73], per_class=4, seed=0)
    assert again.read_text() == manifest.read_text()
    for r in rows:
        a = sf.read(tmp_path / "a" / r["path"])[0]
        b = sf.read(tmp_path / "b" / r["path"])[0]
        assert np.array_equal(a, b)


def test_cli_render_gm(soundfont: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "gm"
    code = main(["dataset", "render-gm", str(out), "--programs", "0,46", "--per-class", "3",
                 "--soundfont", str(soundfont), "--seed", "1"])
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == str(out / "manifest.csv")
    assert "[2/2] program  46 Orchestral Harp: 3 clips" in captured.err
    with (out / "manifest.csv").open() as fh:
        assert sorted({r["split"] for r in csv.DictReader(fh)}) == ["test", "train", "val"]
    assert main(["dataset", "render-gm", str(tmp_path / "two"), "--programs", "0",
                 "--per-class", "2", "--soundfont", str(soundfont), "--quiet"]) == 0
    assert "--per-class 2 puts every clip in the train split" in capsys.readouterr().err
    assert main(["dataset", "render-gm", str(out), "--per-class", "0"]) == 2
    assert main(["dataset", "render-gm", str(tmp_path / "gm2"), "--programs", "0",
                 "--soundfont", str(tmp_path / "none.sf2")]) == 2
    assert "SoundFont not found" in capsys.readouterr().err


def test_render_gm_refuses_to_replace_a_dataset_unless_asked(soundfont: Path, tmp_path: Path,
                                                             capsys) -> None:
    """It replaced manifest.csv of any folder (a triplets benchmark's too), leaving the old
    clips beside a manifest that no longer listed them."""
    out = tmp_path / "gm"
    args = ["dataset", "render-gm", str(out), "--per-class", "3", "--soundfont",
            str(soundfont), "--quiet"]
    assert main([*args, "--programs", "0"]) == 0
    first = (out / "manifest.csv").read_text()
    assert main([*args, "--programs", "40"]) == 2
    assert "already holds a rendered dataset" in capsys.readouterr().err
    assert (out / "manifest.csv").read_text() == first
    assert main([*args, "--programs", "40", "--overwrite"]) == 0
    with (out / "manifest.csv").open() as fh:
        listed = {r["path"] for r in csv.DictReader(fh)}
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*.flac")}
    assert on_disk == listed and all("040_" in p for p in listed)  # no orphan left
    other = tmp_path / "mine"
    other.mkdir()
    (other / "manifest.csv").write_text("content,style\na.wav,b.wav\n")
    assert main(["dataset", "render-gm", str(other), "--programs", "0", "--per-class", "3",
                 "--soundfont", str(soundfont), "--overwrite"]) == 2
    assert "is not a manifest written by hpc-nst dataset render-gm" in capsys.readouterr().err
    assert (other / "manifest.csv").read_text() == "content,style\na.wav,b.wav\n"


def test_a_backwards_program_range_is_named_as_such(tmp_path: Path, capsys) -> None:
    """'--programs 5-2' said 'programs must be in 0..127', which they are."""
    with pytest.raises(SystemExit) as exc:
        main(["dataset", "render-gm", str(tmp_path / "gm"), "--programs", "5-2"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "'5-2' runs backwards" in err and "'2-5'" in err
    assert not (tmp_path / "gm").exists()


def test_a_failed_render_leaves_no_folder_and_an_earlier_dataset_as_it_was(
        soundfont: Path, tmp_path: Path, monkeypatch) -> None:
    """A render that failed on its second program left an empty or half-filled folder (and,
    with --overwrite, an earlier dataset's clips replaced under its old manifest)."""
    import hpc_nst.data.gm_dataset as gm

    real = gm.render_program

    def fails_on_program_40(plans, sf):
        if plans[0].program == 40:
            raise ValueError("fluidsynth died")
        return real(plans, sf)

    out = tmp_path / "new" / "gm"
    monkeypatch.setattr(gm, "render_program", fails_on_program_40)
    with pytest.raises(ValueError, match="fluidsynth died"):
        render_gm_dataset(out, [0, 40], 3, 0, soundfont)
    assert not (tmp_path / "new").exists()  # nor the parent it made

    done = tmp_path / "done"
    monkeypatch.setattr(gm, "render_program", real)
    render_gm_dataset(done, [0], 3, 0, soundfont)
    before = {p.relative_to(done): p.read_bytes() for p in done.rglob("*") if p.is_file()}
    monkeypatch.setattr(gm, "render_program", fails_on_program_40)
    with pytest.raises(ValueError, match="fluidsynth died"):
        render_gm_dataset(done, [0, 40], 3, 1, soundfont, overwrite=True)
    after = {p.relative_to(done): p.read_bytes() for p in done.rglob("*") if p.is_file()}
    assert after == before


def test_render_gm_stopped_by_sigterm_cleans_up_and_exits_143(soundfont: Path,
                                                              tmp_path: Path) -> None:
    """scancel or timeout send SIGTERM: the staged clips stayed in OUT/.partial."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "gm"
    proc = subprocess.Popen([sys.executable, "-m", "hpc_nst", "dataset", "render-gm", str(out),
                             "--programs", "0-40", "--per-class", "3", "--soundfont",
                             str(soundfont)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not any((out / ".partial").rglob("*.flac")) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and not out.exists()
