"""``hpc-nst train-judge``: options parsed into what train_judge takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_nst.cli import build_parser, main


def test_soundfont_repeats_into_a_list():
    args = build_parser().parse_args(
        ["train-judge", "-o", "j.npz", "--soundfont", "a.sf2", "--soundfont", "b.sf3"])
    assert args.soundfonts == [Path("a.sf2"), Path("b.sf3")]
    assert build_parser().parse_args(["train-judge", "-o", "j.npz"]).soundfonts is None


def test_a_missing_soundfont_is_named_before_any_rendering(tmp_path, capsys, monkeypatch):
    import hpc_nst.metrics.judge_train as judge_train

    def no_render(*args, **kwargs):
        raise AssertionError("rendered before every SoundFont was checked")

    monkeypatch.setattr(judge_train, "render_set", no_render)
    present = tmp_path / "present.sf2"
    present.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")  # a SoundFont header
    missing = tmp_path / "nowhere.sf2"
    code = main(["train-judge", "-o", str(tmp_path / "j.npz"), "--soundfont", str(present),
                 "--soundfont", str(missing)])
    err = capsys.readouterr().err
    assert code != 0 and "nowhere.sf2" in err
    assert not (tmp_path / "j.npz").exists()


@pytest.mark.parametrize("bad", [["--renders", "1"], ["--gl-fraction", "2"]])
def test_bad_options_are_usage_errors(tmp_path, capsys, monkeypatch, bad):
    import hpc_nst.metrics.judge_train as judge_train

    def no_training(*args, **kwargs):
        raise AssertionError("trained despite a bad option")

    monkeypatch.setattr(judge_train, "train_judge", no_training)
    assert main(["train-judge", "-o", str(tmp_path / "j.npz"), *bad]) != 0
    assert bad[0] in capsys.readouterr().err


def test_the_output_is_checked_before_any_rendering(tmp_path, capsys, monkeypatch):
    """`-o FOLDER` rendered for minutes before failing to save; an existing file (a
    classifier checkpoint) was replaced without a word."""
    import hpc_nst.metrics.judge_train as judge_train

    def no_training(*args, **kwargs):
        raise AssertionError("trained before -o was checked")

    monkeypatch.setattr(judge_train, "train_judge", no_training)
    existing = tmp_path / "c.pt"
    existing.write_bytes(b"keep me")
    for out, text in ((tmp_path, "a folder"), (existing, "exists; add --overwrite"),
                      (existing / "j.npz", "is a file, not a folder")):
        assert main(["train-judge", "-o", str(out)]) == 2
        assert text in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"
