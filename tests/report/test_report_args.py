"""``hpc-nst report`` arguments refused on one line (exit 2): a missing --inputs-dir, an
output that is a file."""

from __future__ import annotations

import pytest

from hpc_nst.cli import main
from hpc_nst.errors import UsageError


def _one_line(capsys) -> str:  # noqa: ANN001
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_missing_inputs_dir_is_refused(real_stores, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--quiet",
                 "--inputs-dir", str(tmp_path / "nope")]) == 2
    err = _one_line(capsys)
    assert "--inputs-dir" in err and "no such folder" in err
    assert not out.exists()
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--quiet",
                 "--inputs-dir", str(a_file)]) == 2
    assert "not a folder" in _one_line(capsys)


def test_output_that_is_a_file_is_refused(real_stores, tmp_path, capsys):
    existing = tmp_path / "report.html"
    existing.write_text("keep me")
    assert main(["report", str(real_stores["eq"]), "-o", str(existing), "--quiet"]) == 2
    err = _one_line(capsys)
    assert err.startswith("hpc-nst report: error: ") and "not a folder" in err
    assert existing.read_text() == "keep me"
    # below a file: the library says so too, as a usage error rather than a traceback
    from hpc_nst.report.build import ReportOptions, build_report

    for out in (existing, existing / "sub"):
        with pytest.raises(UsageError, match="a file is in the way"):
            build_report([real_stores["eq"]], out, ReportOptions(groups=("run",)))
    assert main(["report", str(real_stores["eq"]), "-o", str(existing / "sub"), "--quiet"]) == 2
    assert "a file is in the way" in _one_line(capsys)


def test_a_folder_of_other_files_is_refused_and_an_earlier_report_replaced(real_stores,
                                                                           tmp_path, capsys):
    """It wrote its tables, figures and audio/ into an export folder (or any other)."""
    other = tmp_path / "export"
    other.mkdir()
    (other / "metadata.jsonl").write_text("keep me")
    assert main(["report", str(real_stores["eq"]), "-o", str(other), "--quiet",
                 "--metrics", "run"]) == 2
    assert "a folder of other files (not a report folder" in _one_line(capsys)
    assert [p.name for p in other.iterdir()] == ["metadata.jsonl"]
    report = tmp_path / "report"
    for _ in range(2):  # a report folder is replaced
        assert main(["report", str(real_stores["eq"]), "-o", str(report), "--quiet",
                     "--metrics", "run"]) == 0


@pytest.mark.parametrize("flag", ["--judge", "--classifier"])
def test_a_judge_or_classifier_that_is_not_there_is_refused(real_stores, tmp_path, capsys,
                                                            flag):
    """It was skipped silently: the judge columns came out empty with exit code 0."""
    out = tmp_path / "r"
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--quiet", flag,
                 str(tmp_path / "nope.npz")]) == 2
    assert f"{flag} {tmp_path / 'nope.npz'}: no such file" in _one_line(capsys)
    assert not out.exists()


def test_a_report_that_fails_leaves_the_earlier_one_whole(real_stores, tmp_path, capsys):
    """A report refused while reading a damaged store had already replaced pairs.csv and
    the other tables of the report in -o, beside the old index.html and stores.json."""
    import json
    import shutil

    out = tmp_path / "rep"
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--metrics", "run",
                 "--quiet"]) == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    models = json.loads((out / "stores.json").read_text())[0]["models"]
    assert models == {}  # no style or judge metrics asked for: no model used
    broken = tmp_path / "broken.zarr"
    shutil.copytree(real_stores["eq"], broken)
    (broken / "audio" / "zarr.json").write_text("{not json")
    assert main(["report", str(broken), "-o", str(out), "--metrics", "run", "--quiet"]) == 2
    assert "its per-pair array 'audio' is unreadable" in _one_line(capsys)  # (a traceback)
    assert main(["verify", str(broken)]) == 1
    assert "'audio' is unreadable" in capsys.readouterr().out
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not list(out.glob(".partial-*"))
    assert main(["report", str(real_stores["eq"]), "-o", str(tmp_path / "new"), "--judge",
                 str(real_stores["eq"] / "zarr.json"), "--quiet"]) == 2  # not a judge
    assert "--judge" in _one_line(capsys) and not (tmp_path / "new").exists()


def test_a_style_label_the_classifier_does_not_know_is_said_in_the_notes(real_stores,
                                                                         tmp_path):
    """style_top1 fell back to the class heard in the style audio without a word, so a
    headline of 100 % could mean "sounds like whatever the style sounds like"."""
    import pandas as pd

    labels = tmp_path / "labels.csv"
    labels.write_text("pair_id,style_label\ns256-000,NotAnInstrument\n")
    out = tmp_path / "rep"
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--metrics", "style",
                 "--labels", str(labels), "--quiet"]) == 0
    notes = pd.read_csv(out / "pairs.csv").set_index("pair_id")["notes"].fillna("")
    assert "the style label 'NotAnInstrument' is no class of the classifier" in \
        notes["s256-000"]
    assert "no class of the classifier" not in notes["s256-001"]
    # the judge's stand-in likewise (it said nothing)
    assert main(["report", str(real_stores["eq"]), "-o", str(tmp_path / "rj"), "--metrics",
                 "judge", "--labels", str(labels), "--quiet"]) == 0
    notes = pd.read_csv(tmp_path / "rj" / "pairs.csv").set_index("pair_id")["notes"].fillna("")
    assert "judge_top1: the style label 'NotAnInstrument' is no class of the judge" in \
        notes["s256-000"]
    assert "no class of the judge" not in notes["s256-001"]


def test_report_refuses_no_metric_group_a_store_twice_and_a_missing_label_file(
        real_stores, tmp_path, capsys):
    store = str(real_stores["eq"])
    assert main(["report", store, "-o", str(tmp_path / "a"), "--metrics", ""]) == 2
    assert "no metric group given" in _one_line(capsys)
    assert main(["report", store, store, "-o", str(tmp_path / "b")]) == 2
    assert "given twice" in _one_line(capsys)
    assert main(["report", store, "-o", str(tmp_path / "c"), "--labels",
                 str(tmp_path / "nosuch.csv")]) == 2
    assert "--labels" in _one_line(capsys) and not (tmp_path / "c").exists()
    assert main(["status", str(tmp_path / "nosuch.zarr")]) == 2
    assert "store not found" in _one_line(capsys)


def test_a_report_into_a_folder_whose_figures_are_a_link_elsewhere(real_stores, tmp_path):
    """The tables are staged inside DIR and moved in; figures and audio are written in place,
    so a DIR/figures that links to other storage keeps working (a staged folder moved onto
    the link was a NotADirectoryError traceback halfway through the move)."""
    out, elsewhere = tmp_path / "rep", tmp_path / "big"
    out.mkdir()
    elsewhere.mkdir()
    (out / "stores.json").write_text("[]")  # an earlier report's
    (out / "figures").symlink_to(elsewhere, target_is_directory=True)
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--metrics", "run",
                 "--quiet"]) == 0
    assert (out / "figures").is_symlink() and any(elsewhere.rglob("*.png"))
    assert (out / "pairs.csv").is_file() and not list(out.glob(".partial-*"))


def test_metric_groups_are_checked_after_parsing_and_a_broken_plugin_named(real_stores,
                                                                           tmp_path, capsys):
    """--metrics was argparse's type: a plugin that failed on import showed as "argument
    --metrics: invalid _groups value: 'run'", hiding the plugin's own error."""
    import os
    import subprocess
    import sys

    out = tmp_path / "r"
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--metrics", "runn"]) == 2
    err = _one_line(capsys)
    assert "--metrics 'runn': unknown metric group(s) ['runn']" in err and "level" in err
    env = {**os.environ, "HPC_NST_PLUGINS": "no_such_metric_plugin_xyz"}
    res = subprocess.run([sys.executable, "-m", "hpc_nst", "report", str(real_stores["eq"]),
                          "-o", str(out), "--metrics", "run"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert "cannot import plugin module 'no_such_metric_plugin_xyz'" in res.stderr
    assert not out.exists()
