"""Triplets: deterministic plans, melodies in range, rendered files and a runnable manifest."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

from hpc_nst.data import triplets
from hpc_nst.data.soundfont import GM_PROGRAM_NAMES, playable_range


def test_plans_are_deterministic_and_independent_of_the_count():
    a = [triplets.plan_triplet(3, 0, i, 2.56) for i in range(20)]
    b = [triplets.plan_triplet(3, 0, i, 2.56) for i in range(25)][:20]
    assert a == b
    assert a != [triplets.plan_triplet(4, 0, i, 2.56) for i in range(20)]
    assert triplets.plan_triplet(3, 1, 0, 2.56) != a[0]  # another length group: other draws


def test_plans_respect_instruments_ranges_and_lengths():
    for i in range(40):
        t = triplets.plan_triplet(0, 0, i, 2.56)
        assert t.content_program != t.style_program
        assert {t.content_program, t.style_program} <= set(triplets.MELODIC_PROGRAMS)
        for notes, programs in ((t.content_notes, (t.content_program, t.style_program)),
                                (t.style_notes, (t.style_program,))):
            assert notes
            for pitch, start, end, velocity in notes:
                assert all(playable_range(p)[0] <= pitch <= playable_range(p)[1]
                           for p in programs)
                assert 0 <= start < end <= 2.56 - triplets.TAIL_S + 1e-9
                assert 70 <= velocity <= 110
            starts = [n[1] for n in notes]
            assert starts == sorted(starts)
            assert all(a[2] <= b[1] for a, b in zip(notes, notes[1:]))  # monophonic
        assert [n[0] for n in t.content_notes] != [n[0] for n in t.style_notes]
        assert t.pair_id == f"s256-{i:03d}"


def test_render_writes_audio_manifest_and_labels(tmp_path, soundfont):
    from hpc_nst.batch.manifest import read_manifest
    from hpc_nst.config import load_job

    out = tmp_path / "tri"
    manifest = triplets.render_triplets(out, [2, 1], [1.0, 1.5], seed=5)
    rows = list(csv.DictReader(open(manifest)))
    assert [r["pair_id"] for r in rows] == ["s100-000", "s100-001", "s150-000"]
    assert list(rows[0]) == list(triplets.MANIFEST_COLUMNS)
    labels = list(csv.DictReader(open(out / "labels.csv")))
    for row, lab in zip(rows, labels):
        plan = triplets.plan_triplet(5, 0 if row["pair_id"].startswith("s100") else 1,
                                     int(row["pair_id"][-3:]), float(lab["seconds"]))
        assert lab["content_label"] == GM_PROGRAM_NAMES[plan.content_program]
        assert lab["style_label"] == GM_PROGRAM_NAMES[plan.style_program]
        for role in ("content", "style", "target"):
            info = sf.info(str(out / row[role]))
            assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
            assert info.frames == round(float(lab["seconds"]) * 16000)
            assert not Path(row[role]).is_absolute()
        audio = {r: sf.read(str(out / row[r]))[0] for r in ("content", "style", "target")}
        assert all(0.8 < np.abs(a).max() < 0.95 for a in audio.values())
        assert not np.allclose(audio["content"], audio["target"])
    # hpc-nst run accepts it as it is, target column included.
    man = read_manifest(manifest, load_job())
    assert not man.problems and man.pairs[0].target_path == out / rows[0]["target"]
    # Bit-identical when rendered again.
    again = triplets.render_triplets(tmp_path / "again", [1], [1.0], seed=5)
    first = sf.read(str(out / rows[0]["target"]))[0]
    assert np.array_equal(sf.read(str(again.parent / rows[0]["target"]))[0], first)


def test_cli(tmp_path, soundfont, capsys):
    from hpc_nst.cli import main

    assert main(["dataset", "triplets", str(tmp_path / "t"), "--count", "1", "--seconds", "1",
                 "--seed", "2", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "t" / "manifest.csv")
    assert main(["dataset", "triplets", str(tmp_path / "u"), "--count", "1", "2",
                 "--seconds", "1"]) == 2
    assert "one count per length" in capsys.readouterr().err
    assert main(["dataset", "triplets", str(tmp_path / "v"), "--count", "1", "-2",
                 "--seconds", "1", "900"]) == 2
    assert "--count -2, --seconds 900: counts must be >= 0" in capsys.readouterr().err


def test_a_folder_with_triplets_is_not_silently_replaced(tmp_path, soundfont, capsys):
    """Rendering fewer triplets into a folder that holds some replaced its manifest and labels
    (a store made from it then refused to resume, its report lost labels) and left the others'
    audio behind; now refused without --overwrite, and with it the orphans are removed."""
    from hpc_nst.cli import main

    out = tmp_path / "t"
    args = ["dataset", "triplets", str(out), "--seconds", "1", "--seed", "2", "--quiet"]
    assert main([*args, "--count", "2"]) == 0
    before = (out / "manifest.csv").read_bytes()
    capsys.readouterr()
    assert main([*args, "--count", "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds triplets" in err and "--overwrite" in err
    assert (out / "manifest.csv").read_bytes() == before
    assert main([*args, "--count", "1", "--overwrite"]) == 0
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert [r["pair_id"] for r in rows] == ["s100-000"]
    assert sorted(p.name for p in (out / "audio").iterdir()) == sorted(
        Path(rows[0][k]).name for k in ("content", "style", "target"))
    assert len(list(csv.DictReader(open(out / "labels.csv")))) == 1
    # a manifest of the user's own (not this generator's) is never overwritten, nor its audio
    mine = tmp_path / "mine"
    (mine / "audio").mkdir(parents=True)
    (mine / "audio" / "take1.flac").write_bytes(b"a user's recording")
    (mine / "manifest.csv").write_text("content,style\naudio/take1.flac,audio/take1.flac\n")
    capsys.readouterr()
    assert main(["dataset", "triplets", str(mine), "--count", "1", "--overwrite",
                 "--quiet"]) == 2
    assert "not a manifest written by hpc-nst dataset triplets" in capsys.readouterr().err
    assert (mine / "audio" / "take1.flac").read_bytes() == b"a user's recording"
    assert (mine / "manifest.csv").read_text().startswith("content,style")
    # nothing to render is refused before anything is written
    assert main(["dataset", "triplets", str(tmp_path / "z"), "--count", "0", "--quiet"]) == 2
    assert "every count is 0" in capsys.readouterr().err and not (tmp_path / "z").exists()
