"""``hpc-nst manifest``: folders/globs -> a manifest that ``hpc-nst run`` accepts as is."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hpc_nst.batch.manifest import read_manifest
from hpc_nst.batch.manifest_build import pair_id
from hpc_nst.cli import main
from hpc_nst.config import load_job

from .conftest import SR, tone


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """content/{piano,voice}/..., style/{harp,violin}/... plus a non-audio file."""
    lib = tmp_path / "lib"
    files = {"content/piano/p1.wav": 220, "content/piano/p2.flac": 262,
             "content/voice/v1.wav": 300, "content/voice/v 2 é.wav": 310,
             "style/harp/h1.wav": 440, "style/harp/h2.wav": 450,
             "style/violin/vl1.wav": 500, "style/violin/deep/vl2.ogg": 520}
    for rel, f0 in files.items():
        (lib / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(lib / rel, tone(f0, 0.3), SR)
    (lib / "style/violin/README.txt").write_text("not audio")
    return lib


def _build(*args: str) -> int:
    return main(["manifest", *args])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_cross_with_labels_runs_through_the_reader(library, tmp_path, tiny, capsys):
    (library / "style" / "families.csv").write_text(
        "path,family,licence\nharp/h1.wav,plucked,cc0\nharp/h2.wav,plucked,cc0\n"
        "violin/vl1.wav,bowed,cc-by\nviolin/deep/vl2.ogg,bowed,cc-by\n")
    out = tmp_path / "manifests" / "all.csv"
    assert _build("--content", str(library / "content"), "--style", str(library / "style"),
                  "-r", "--labels-from-dirs", "--labels", str(library / "style/families.csv"),
                  "--override", "seed=3", "--column", "split=train", "-o", str(out)) == 0
    assert "16 pairs (cross) of 4 content x 4 style files" in capsys.readouterr().out
    rows = _rows(out)
    assert list(rows[0]) == ["pair_id", "content", "style", "content_label", "style_label",
                             "style_family", "style_licence", "seed", "split"]
    assert len({r["pair_id"] for r in rows}) == 16
    assert Counter(r["style_label"] for r in rows) == {"harp": 8, "violin": 8}
    assert Counter(r["content_label"] for r in rows) == {"piano": 8, "voice": 8}
    vl2 = [r for r in rows if r["style"].endswith("vl2.ogg")]
    assert {r["style_label"] for r in vl2} == {"violin"} and vl2[0]["style_family"] == "bowed"
    assert all(r["seed"] == "3" and r["split"] == "train" for r in rows)
    assert all(not Path(r["content"]).is_absolute() for r in rows)  # relative to the CSV
    # hpc-nst run's reader takes it as is: paths resolve, extras are metadata, seed applies.
    man = read_manifest(out, tiny)
    assert not man.problems and len(man.valid) == 16
    assert man.metadata_columns == ("content_label", "style_label", "style_family",
                                    "style_licence", "split")
    assert all(p.cfg.optim.seed == 3 for p in man.valid)
    assert dict(man.pairs[0].metadata)["style_licence"] in ("cc0", "cc-by")
    assert any("v 2 é" in p.content for p in man.pairs)
    # Deterministic: the same folders give the same bytes; ids depend on the paths only.
    again = tmp_path / "again.csv"
    _build("--content", str(library / "content"), "--style", str(library / "style"), "-r",
           "--labels-from-dirs", "--labels", str(library / "style/families.csv"),
           "--override", "seed=3", "--column", "split=train", "-o", str(again))
    assert [r["pair_id"] for r in _rows(again)] == [r["pair_id"] for r in rows]
    assert pair_id("a/x.wav", "b/y.wav") == pair_id("a/x.wav", "b/y.wav") != \
        pair_id("a/x.wav", "c/y.wav")


def test_sample_is_seeded_distinct_and_balanced_over_styles(library, tmp_path):
    made: list[Path] = []

    def sample(seed: int, n: int) -> list[dict[str, str]]:
        out = tmp_path / f"s{len(made)}.csv"
        made.append(out)
        assert _build("--content", str(library / "content"), "--style",
                      str(library / "style"), "-r", "--labels-from-dirs", "--mode", "sample",
                      "--pairs", str(n), "--seed", str(seed), "-o", str(out)) == 0
        return _rows(out)

    a, b, c = sample(1, 6), sample(1, 6), sample(2, 6)
    assert a == b and a != c
    for rows in (a, c):
        assert len({(r["content"], r["style"]) for r in rows}) == 6  # no pair twice
        assert Counter(r["style_label"] for r in rows) == {"harp": 3, "violin": 3}
        uses = Counter(r["content"] for r in rows)
        assert len(uses) == 4 and max(uses.values()) - min(uses.values()) <= 1
    odd = sample(3, 5)
    assert sorted(Counter(r["style_label"] for r in odd).values()) == [2, 3]


def test_side_csv_sets_per_row_overrides(library, tmp_path, tiny):
    (library / "style" / "w.csv").write_text(
        "path,style_weight,family\nharp/h1.wav,50,plucked\nharp/h2.wav,,plucked\n")
    out = tmp_path / "w.csv"
    assert _build("--content", str(library / "content/piano"), "--style",
                  str(library / "style/harp"), "--labels", str(library / "style/w.csv"),
                  "--override", "iterations=7", "-o", str(out)) == 0
    rows = _rows(out)
    assert list(rows[0])[3:] == ["style_family", "iterations", "style_weight"]
    weights = {Path(r["style"]).name: r["style_weight"] for r in rows}
    assert weights == {"h1.wav": "50", "h2.wav": ""}
    man = read_manifest(out, tiny)
    by_style = {Path(p.style).name: p.cfg for p in man.valid}
    assert by_style["h1.wav"].loss.style_weight == 50 and by_style["h1.wav"].optim.iterations == 7
    assert by_style["h2.wav"].loss.style_weight == tiny.loss.style_weight


def test_zip_globs_extensions_and_flat_folders(library, tmp_path):
    out = tmp_path / "zip.csv"
    assert _build("--content", str(library / "content/piano/*"), "--style",
                  str(library / "style/harp"), "--mode", "zip", "-o", str(out)) == 0
    rows = _rows(out)
    assert [(Path(r["content"]).name, Path(r["style"]).name) for r in rows] == \
        [("p1.wav", "h1.wav"), ("p2.flac", "h2.wav")]
    only_wav = tmp_path / "wav.csv"
    assert _build("--content", str(library / "content"), "--style", str(library / "style"),
                  "-r", "--ext", "wav", "-o", str(only_wav)) == 0
    assert not any(r["content"].endswith(".flac") or r["style"].endswith(".ogg")
                   for r in _rows(only_wav))
    glob_out = tmp_path / "glob.csv"
    assert _build("--content", str(library / "content/**/*.wav"), "--style",
                  str(library / "style/violin"), "-r", "-o", str(glob_out)) == 0
    assert len(_rows(glob_out)) == 3 * 2


@pytest.mark.parametrize(("args", "message"), [
    (["--content", "{lib}/nowhere", "--style", "{lib}/style"],
     "nowhere: 1 problem(s):\n  no such folder, file or glob pattern"),
    (["--content", "{lib}/content", "--style", "{lib}/style"],
     "no audio files (.wav, .flac, .ogg, .mp3, .aiff, .aif, .opus) found; sub-folders not "
     "searched (add --recursive)"),
    (["--content", "{lib}/content", "--style", "{lib}/style/harp", "-r", "--mode", "zip"],
     "4 content files but 2 style files; zip pairs them one to one"),
    (["--content", "{lib}/content", "--style", "{lib}/style", "-r", "--mode", "sample",
      "--pairs", "17"], "--pairs 17: must be 1..16"),
    (["--content", "{lib}/content", "--style", "{lib}/style", "-r", "--mode", "sample"],
     "--mode sample needs --pairs N"),
    (["--content", "{lib}/content", "--style", "{lib}/style", "-r", "--override",
      "iteratons=5"], "'iteratons' is not a per-row key; allowed: seed,"),
    (["--content", "{lib}/content", "--style", "{lib}/style", "-r", "--override",
      "iterations=abc"], "iterations=abc: optim.iterations: expected an integer, got 'abc'"),
    (["--content", "{lib}/content", "--style", "{lib}/style", "-r", "--labels",
      "{lib}/none.csv"], "none.csv: 1 problem(s):\n  labels file not found"),
])
def test_bad_requests_name_the_problem(library, tmp_path, capsys, args, message):
    out = tmp_path / "m.csv"
    argv = [a.replace("{lib}", str(library)) for a in args]
    code = _build(*argv, "-o", str(out))
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert not out.exists()


def test_an_existing_manifest_is_not_overwritten(library, tmp_path, capsys):
    out = tmp_path / "m.csv"
    out.write_text("precious\n")
    args = ["--content", str(library / "content"), "--style", str(library / "style"), "-r"]
    assert _build(*args, "-o", str(out)) == 2
    assert "already exists; use --overwrite" in capsys.readouterr().err
    assert out.read_text() == "precious\n"
    assert _build(*args, "-o", str(out), "--overwrite") == 0
    assert len(_rows(out)) == 16
    assert np.all([r["pair_id"] for r in _rows(out)])


def test_two_roots_with_the_same_file_names_get_distinct_ids(tmp_path):
    for root in ("setA", "setB"):
        (tmp_path / root).mkdir()
        sf.write(tmp_path / root / "x.wav", tone(220, 0.3), SR)
    (tmp_path / "st").mkdir()
    sf.write(tmp_path / "st" / "s.wav", tone(330, 0.3), SR)
    out = tmp_path / "m.csv"
    assert _build("--content", str(tmp_path / "setA"), "--content", str(tmp_path / "setB"),
                  "--style", str(tmp_path / "st"), "-o", str(out)) == 0
    ids = [r["pair_id"] for r in _rows(out)]
    assert len(ids) == 2 and len(set(ids)) == 2


def test_awkward_file_names_give_ids_the_run_accepts_and_hidden_files_are_skipped(tmp_path,
                                                                                  tiny):
    lib = tmp_path / "lib"
    (lib / "c").mkdir(parents=True)
    (lib / "s").mkdir()
    for rel in ("c/-6dB take.wav", "c/+3 boost-.wav", "s/#01 violin.wav"):
        sf.write(lib / rel, tone(330, 0.3), SR)
    (lib / "c/._-6dB take.wav").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # macOS litter
    out = tmp_path / "m.csv"
    assert _build("--content", str(lib / "c"), "--style", str(lib / "s"), "-o", str(out)) == 0
    rows = _rows(out)
    assert len(rows) == 2 and all(not r["content"].split("/")[-1].startswith(".") for r in rows)
    man = read_manifest(out, tiny)
    assert len(man.valid) == 2, [p.errors for p in man.pairs]
    # a content path starting with '#' is a pair, not a comment, where the file exists
    flipped = tmp_path / "flip.csv"
    flipped.write_text("content,style\n#01 violin.wav,-6dB take.wav\n# a comment,x.wav\n")
    for name in ("#01 violin.wav", "-6dB take.wav"):
        (tmp_path / name).write_bytes((lib / ("s" if name[0] == "#" else "c") / name)
                                      .read_bytes())
    assert [p.content for p in read_manifest(flipped, tiny).pairs] == ["#01 violin.wav"]


def test_a_bad_labels_file_is_named_with_its_line_and_unmatched_paths_are_reported(
        library, tmp_path, capsys, caplog):
    labels = tmp_path / "labels.csv"
    labels.write_text("path,family\nlib/style/harp/h1.wav,strings\n"
                      "lib/style/harp/h2.wav,strings,extra\n")
    args = ["--content", str(library / "content"), "--style", str(library / "style"), "-r",
            "--labels", str(labels), "-o", str(tmp_path / "m.csv")]
    assert _build(*args) == 2
    assert "line 3: 3 fields, the header names 2" in capsys.readouterr().err
    labels.write_text("path,family\nlib/style/harp/h1.wav,strings\nlib/style/HARP/h2.wav,x\n")
    with caplog.at_level("WARNING"):
        assert _build(*args) == 0
    assert "1 path(s) of the labels file(s) match no file found" in caplog.text
    assert "have no row in the labels file(s)" in caplog.text


@pytest.mark.parametrize("column, expected", [
    ("style=foo", "'style' is a column this manifest already has"),
    ("content_label=x", "'content_label' is a column this manifest already has"),
    ("pair_id=x", "'pair_id' is a column this manifest already has"),
    ("seed=4", "'seed' is a column this manifest already has"),
    ("stlye=x", "did you mean 'style'?"),
])
def test_a_constant_column_never_replaces_a_real_one(library, tmp_path, capsys, column,
                                                     expected):
    """``--column style=foo`` replaced every style path with 'foo' (and the run then refused
    the file: column 'style' twice); a folder label or an id the same; a misspelt known
    column gave a manifest the run refuses."""
    out = tmp_path / "m.csv"
    assert _build("--content", str(library / "content"), "--style", str(library / "style"),
                  "-r", "--labels-from-dirs", "--column", column, "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert expected in err and "--column" in err and not out.exists()


def test_a_glob_keeps_symlinked_files_in_their_labelled_folders(tmp_path):
    """The glob form resolved symlinks: style/cello/c.wav -> raw/1.wav lost its label (and
    changed its path and pair id), while the folder form kept it."""
    (tmp_path / "raw").mkdir()
    for d in ("content", "style/cello", "style/violin"):
        (tmp_path / d).mkdir(parents=True)
    for i in (1, 2):
        sf.write(tmp_path / "raw" / f"{i}.wav", tone(220.0 * i, 0.3), SR)
    sf.write(tmp_path / "content" / "x.wav", tone(330.0, 0.3), SR)
    (tmp_path / "style/cello/c.wav").symlink_to("../../raw/1.wav")
    (tmp_path / "style/violin/v.wav").symlink_to("../../raw/2.wav")
    rows = {}
    for form, style in (("glob", str(tmp_path / "style/*/*.wav")),
                        ("folder", str(tmp_path / "style"))):
        out = tmp_path / f"{form}.csv"
        assert main(["manifest", "--content", str(tmp_path / "content"), "--style", style,
                     "-r", "--labels-from-dirs", "-o", str(out)]) == 0
        rows[form] = sorted((r["pair_id"], r["style"], r["style_label"])
                            for r in csv.DictReader(out.open()))
    assert [label for _, _, label in rows["glob"]] == ["cello", "violin"]
    assert rows["glob"] == rows["folder"]


def test_overlapping_specs_list_each_file_once(library, tmp_path, capsys):
    """A folder and its sub-folder (or two overlapping globs) listed a file twice: under two
    pair ids and labels (computed twice, on both sides of a split) or as a duplicate row."""
    out = tmp_path / "over.csv"
    assert _build("--content", str(library / "content"), "--content",
                  str(library / "content/piano"), "--style", str(library / "style/harp"),
                  "-r", "--labels-from-dirs", "-o", str(out)) == 0
    printed = capsys.readouterr()
    rows = _rows(out)
    assert len(rows) == 4 * 2 and len({r["pair_id"] for r in rows}) == 8
    assert Counter(Path(r["content"]).name for r in rows) == {
        "p1.wav": 2, "p2.flac": 2, "v1.wav": 2, "v 2 é.wav": 2}
    # kept under the first spec: the piano files keep their folder's label
    assert {r["content_label"] for r in rows if "piano" in r["content"]} == {"piano"}
    assert "2 file(s) named by more than one --content" in printed.err
    assert "of 4 content x 2 style files" in printed.out
    globs = tmp_path / "globs.csv"
    assert _build("--content", str(library / "content/piano/*"), "--content",
                  str(library / "content/piano/p1*"), "--style", str(library / "style/harp"),
                  "-o", str(globs)) == 0
    assert len(_rows(globs)) == 2 * 2
    assert not read_manifest(globs, load_job()).problems
    # one audio file linked into two labelled folders is two styles, not a duplicate
    raw = tmp_path / "raw"
    raw.mkdir()
    sf.write(raw / "1.wav", tone(400, 0.3), SR)
    for label in ("cello", "strings"):
        (tmp_path / "linked" / label).mkdir(parents=True)
        (tmp_path / "linked" / label / "c.wav").symlink_to(raw / "1.wav")
    linked = tmp_path / "linked.csv"
    capsys.readouterr()
    assert _build("--content", str(library / "content/piano"), "--style",
                  str(tmp_path / "linked"), "-r", "--labels-from-dirs", "-o", str(linked)) == 0
    assert "more than one" not in capsys.readouterr().err
    assert sorted({r["style_label"] for r in _rows(linked)}) == ["cello", "strings"]
