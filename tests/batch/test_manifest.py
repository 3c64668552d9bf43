"""Manifest validation: every kind of problem, reported at once with its CSV line number."""

from __future__ import annotations

import os

import pytest

from hpc_nst.batch.manifest import (
    ManifestError,
    default_pair_id,
    group_key,
    read_manifest,
)
from hpc_nst.config import apply_overrides

from .conftest import write_csv


def test_valid_manifest_resolves_paths_against_its_folder(tmp_path, audio_dir, tiny, monkeypatch):
    m = write_csv(audio_dir / "m.csv", "pair_id,content,style,target",
                  ["p1,a.wav,b.wav,c.wav", "p2,./d.wav,e44k.flac,"])
    monkeypatch.chdir(tmp_path)  # the cwd must not matter
    man = read_manifest(m, tiny)
    assert man.problems == [] and len(man.valid) == 2
    p1, p2 = man.pairs
    assert p1.content_path == audio_dir / "a.wav" and p1.target_path == audio_dir / "c.wav"
    assert p2.content_path.samefile(audio_dir / "d.wav")
    assert p1.content_samples == int(0.5 * 16000)
    # 0.8 s at 44.1 kHz, resampled to 16 kHz (estimate rounded up)
    assert abs(p2.style_samples - 12800) <= 1 and p2.target_path is None
    assert p1.line == 2 and p2.line == 3


def test_every_row_problem_is_reported_with_its_line(audio_dir, tiny):
    (audio_dir / "folder.wav").mkdir()
    m = write_csv(audio_dir / "m.csv", "pair_id,content,style,target,iterations,init", [
        "ok,a.wav,b.wav,,,",                 # 2: fine
        "missing,nope.wav,b.wav,,,",         # 3: file not found
        "garbage,garbage.wav,b.wav,,,",      # 4: unreadable
        "short,a.wav,short.wav,,,",          # 5: too short (style)
        "dir,folder.wav,b.wav,,,",           # 6: directory
        "empty,,b.wav,,,",                   # 7: empty content
        "fields,a.wav,b.wav",                # 8: too few fields
        "ok,c.wav,d.wav,,,",                 # 9: duplicate pair_id
        "bad id!,a.wav,b.wav,,,",            # 10: unsafe id
        "badint,a.wav,b.wav,,abc,",          # 11: iterations not an integer
        "badinit,a.wav,b.wav,,,sideways",    # 12: init not allowed
        "tgt,a.wav,b.wav,gone.wav,,",        # 13: target missing
        "",                                  # 14: blank line, ignored
        "ok2,c.wav,a.wav,,5,content",        # 15: fine, with overrides
        "OK,a.wav,c.wav,,,",                 # 16: 'ok' in other case
    ])
    man = read_manifest(m, tiny)
    by_line = {p.line: p for p in man.pairs}
    assert [p.line for p in man.valid] == [2, 15]
    expect = {
        3: "file not found", 4: "unreadable audio", 5: "too short", 6: "is a directory",
        7: "empty 'content'", 8: "expected 6 fields", 9: "duplicate pair_id 'ok', first on line 2",
        10: "not a safe file name", 11: "expected an integer", 12: "optim.init",
        13: "target", 16: "differs from 'ok' (line 2) only in case",
    }
    for line, text in expect.items():
        assert by_line[line].error and text in by_line[line].error, (line, by_line[line].error)
        assert any(p.startswith(f"line {line}: ") and text in p for p in man.problems), line
    assert len(man.problems) == len(expect)
    assert "gone.wav" in by_line[13].error and "nope.wav" in by_line[3].error
    assert by_line[15].cfg.optim.iterations == 5 and by_line[15].cfg.optim.init == "content"
    # invalid rows get an id that cannot collide, the duplicate one included
    assert by_line[9].pair_id == "invalid-line-9" and by_line[10].pair_id == "invalid-line-10"


@pytest.mark.parametrize(("header", "message"), [
    ("pair_id,content,stlye", r"unknown column 'stlye' \(column 3\): did you mean 'style'\?"),
    ("content,style,iteratons", r"did you mean 'iterations'\?"),
    ("content,style,  ", "column 3 has no usable name"),
    ("pair_id,content", "missing required column 'style'"),
    ("content,style,style", "appears twice"),
    ("", "no header row"),
])
def test_header_problems_are_fatal(tmp_path, tiny, header, message):
    m = write_csv(tmp_path / "m.csv", header, ["a.wav,b.wav"])
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(m, tiny)
    assert "line 1" in str(info.value)


def test_file_level_problems(tmp_path, tiny):
    with pytest.raises(ManifestError, match="manifest file not found"):
        read_manifest(tmp_path / "none.csv", tiny)
    (tmp_path / "latin1.csv").write_bytes(b"content,style\na.wav,b.wav\n\xe9t\xe9.wav,b.wav\n")
    with pytest.raises(ManifestError, match="line 3: not valid UTF-8"):
        read_manifest(tmp_path / "latin1.csv", tiny)
    write_csv(tmp_path / "empty.csv", "content,style", [])
    with pytest.raises(ManifestError, match="no rows"):
        read_manifest(tmp_path / "empty.csv", tiny)
    (tmp_path / "quote.csv").write_text('content,style\na.wav,b.wav\n"a.wav,b.wav\n')
    with pytest.raises(ManifestError, match="malformed CSV"):
        read_manifest(tmp_path / "quote.csv", tiny)


def test_default_pair_id_is_stable_and_depends_on_parameters(audio_dir, tiny):
    m = write_csv(audio_dir / "m.csv", "content,style,style_weight",
                  ["a.wav,b.wav,", "a.wav,b.wav,20", "a.wav,b.wav,"])
    man = read_manifest(m, tiny)
    first, weighted, dup = man.pairs
    assert first.pair_id == default_pair_id("a.wav", "b.wav", tiny.digest())
    assert weighted.pair_id != first.pair_id and weighted.error is None
    assert weighted.cfg.loss.style_weight == 20.0
    assert "duplicate pair (same content, style and parameters)" in dup.error
    assert read_manifest(m, tiny).pairs[0].pair_id == first.pair_id  # stable across reads
    other = apply_overrides(tiny, {"iterations": "7"})
    assert read_manifest(m, other).pairs[0].pair_id != first.pair_id


def test_group_key_ignores_the_seed(tiny):
    assert group_key(apply_overrides(tiny, {"seed": "5"})) == group_key(tiny)
    assert group_key(apply_overrides(tiny, {"style_weight": "5"})) != group_key(tiny)


def test_unchecked_files_for_benchmarks(tmp_path, tiny):
    m = write_csv(tmp_path / "m.csv", "content,style", ["x.wav,y.wav"])
    man = read_manifest(m, tiny, check_files=False)
    assert man.problems == [] and man.pairs[0].content_samples == -1
    assert os.path.isabs(man.pairs[0].content_path)


def test_extra_columns_are_metadata(audio_dir, tiny):
    m = write_csv(audio_dir / "meta.csv", "content,style_label,style,split,seed",
                  ["a.wav,harp,b.wav,train,4", "b.wav,violin,c.wav,,"])
    man = read_manifest(m, tiny)
    assert not man.problems and man.metadata_columns == ("style_label", "split")
    assert man.pairs[0].metadata == (("style_label", "harp"), ("split", "train"))
    assert man.pairs[1].metadata == (("style_label", "violin"), ("split", ""))
    assert man.pairs[0].cfg.optim.seed == 4  # known columns keep their meaning
    # metadata does not enter the pair's identity: same ids as without the columns
    plain = write_csv(audio_dir / "plain.csv", "content,style,seed", ["a.wav,b.wav,4"])
    assert read_manifest(plain, tiny).pairs[0].pair_id == man.pairs[0].pair_id
