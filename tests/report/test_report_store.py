"""hpc-nst report on real stores written by hpc-nst run (one failed pair in each)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from hpc_nst.cli import main
from hpc_nst.metrics import reference
from hpc_nst.report.evaluate import columns

pytestmark = pytest.mark.slow


def test_tables_have_one_row_per_store_and_pair(real_report):
    csv = pd.read_csv(real_report / "pairs.csv", keep_default_na=False, na_values=[""])
    pq = pd.read_parquet(real_report / "pairs.parquet")
    assert list(csv.columns) == list(columns()) == list(pq.columns)
    assert len(csv) == len(pq) == 6
    pd.testing.assert_frame_equal(csv.astype(object).fillna(""), pq.astype(object).fillna(""),
                                  check_dtype=False)
    md = (real_report / "pairs.md").read_text().splitlines()
    assert len(md) == 2 + 6 and md[0].startswith("| job | method | pair_id |")
    assert sorted(zip(csv.job, csv.pair_id)) == sorted(
        (j, p) for j in ("nst", "eq") for p in ("s256-000", "s256-001", "broken"))
    assert set(csv.method) == {"nst", "eq"}


def test_metrics_of_done_pairs(real_report, real_stores):
    df = pd.read_parquet(real_report / "pairs.parquet").set_index(["job", "pair_id"])
    done = df[df.status == "done"]
    assert len(done) == 4
    for col in ("lsd_db", "lsd_dynamics_db", "timbre_mfcc", "timbre_dynamics_db",
                "pitch_jaccard", "centroid_ratio", "bandwidth_ratio", "style_prob",
                "runtime_s", "centroid_content_hz", "bandwidth_style_hz"):
        assert done[col].notna().all(), col
    nst, eq = done.loc["nst"], done.loc["eq"]
    assert nst.loss_total.notna().all() and nst.spectral_convergence.between(0, 2).all()
    assert eq.loss_total.isna().all() and eq.spectral_convergence.isna().all()
    # Labels come from labels.csv beside the manifest.
    assert df.loc[("nst", "s256-000"), "content_label"] == "Flute"
    assert df.loc[("nst", "s256-000"), "style_label"] == "Soprano Sax"
    # Style class: from the label when the classifier knows it, else the style audio's top-1.
    assert df.loc[("eq", "s256-000"), "style_class_source"] == "manifest"
    assert df.loc[("eq", "s256-000"), "style_class"] == "Soprano Sax"
    assert df.loc[("eq", "s256-001"), "style_class_source"] == "classifier"  # Recorder unknown
    assert set(done.style_top1) <= {0.0, 1.0} and done.style_prob.between(0, 1).all()
    # The EQ-proof judge (shipped): a verdict and a class for every done pair.
    assert set(done.judge_top1) <= {0.0, 1.0} and done.judge_prob.between(0, 1).all()
    assert (done.judge_class != "").all()
    # The table's LSD is the metric applied to the stored output and the target file.
    import zarr

    root = zarr.open_group(str(real_stores["eq"]), mode="r")
    ids = list(root["pair"][:])
    i = ids.index("s256-000")
    out = root["audio"][i, : int(root["samples"][i])]
    target, _ = sf.read(str(real_stores["eq"].parent / "audio" / "s256-000_target.flac"),
                        dtype="float32")
    assert eq.loc["s256-000", "lsd_db"] == pytest.approx(reference.lsd(out, target), rel=1e-6)
    assert eq.loc["s256-000", "centroid_ratio"] == pytest.approx(
        eq.loc["s256-000", "centroid_output_hz"] / eq.loc["s256-000", "centroid_content_hz"])


def test_failed_pairs_are_listed_not_fatal(real_report):
    df = pd.read_csv(real_report / "pairs.csv", keep_default_na=False, na_values=[""])
    failed = df[df.status == "failed"]
    assert list(failed.pair_id) == ["broken", "broken"]
    assert failed.error.str.contains("nope.flac: file not found").all()
    assert failed.lsd_db.isna().all()
    fails = pd.read_csv(real_report / "failures.csv")
    assert sorted(fails.job) == ["eq", "nst"] and (fails.pair_id == "broken").all()
    html = (real_report / "index.html").read_text()
    assert "Failed pairs" in html and "nope.flac: file not found" in html


def test_summaries(real_report):
    by_job = pd.read_csv(real_report / "summary_by_job.csv")
    assert sorted(by_job.job) == ["eq", "nst"]
    assert (by_job.pairs == 3).all() and (by_job.done == 2).all() and (by_job.failed == 1).all()
    pairs = pd.read_parquet(real_report / "pairs.parquet")
    for job, g in pairs[pairs.status == "done"].groupby("job"):
        row = by_job.set_index("job").loc[job]
        assert row.lsd_db_mean == pytest.approx(g.lsd_db.mean())
        assert row.lsd_db_std == pytest.approx(g.lsd_db.std(ddof=1))
    by_style = pd.read_parquet(real_report / "summary_by_style.parquet")
    assert {"Soprano Sax", "Recorder", "(none)"} == set(by_style.style_label)
    by_content = pd.read_csv(real_report / "summary_by_content.csv")
    assert {"Flute", "Orchestral Harp", "(none)"} == set(by_content.content_label)
    text = (real_report / "summary.md").read_text()
    assert "## Headline (by job)" in text and "## By style" in text and "lsd_db" in text
    for name in ("job", "style", "content"):
        assert (real_report / f"summary_by_{name}.md").read_text().startswith("| job |")


def test_cli_metric_groups_and_errors(real_stores, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--metrics", "run,spectral",
                 "--details", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "3 rows from 1 store(s) (2 done, 1 failed)" in text and "Headline (by job" in text
    df = pd.read_csv(out / "pairs.csv")
    assert df.lsd_db.isna().all() and df.style_prob.isna().all()
    assert df[df.status == "done"].centroid_ratio.notna().all()
    assert len(list((out / "figures").rglob("*.png"))) == 1  # --details 1
    assert main(["report", str(tmp_path / "missing.zarr"), "-o", str(out)]) == 2
    assert "store not found" in capsys.readouterr().err
    assert main(["report", str(real_stores["eq"]), "-o", str(out), "--metrics", "bogus"]) == 2
    assert "unknown metric group(s) ['bogus']" in capsys.readouterr().err
    not_a_store = tmp_path / "x.zarr"
    not_a_store.mkdir()
    assert main(["report", str(not_a_store), "-o", str(out)]) == 2
    assert "not a Zarr store" in capsys.readouterr().err


def test_missing_input_files_leave_notes_not_crashes(real_stores, tmp_path):
    from hpc_nst.report.build import ReportOptions, build_report

    result = build_report([real_stores["eq"]], tmp_path / "r",
                          ReportOptions(groups=("spectral", "target"),
                                        inputs_dir=tmp_path / "elsewhere", details=1))
    df = pd.read_csv(tmp_path / "r" / "pairs.csv", keep_default_na=False, na_values=[""])
    done = df[df.status == "done"]
    assert done.notes.str.contains("file not found").all()
    assert done.centroid_output_hz.notna().all() and done.centroid_content_hz.isna().all()
    assert all(math.isnan(v) for v in done.lsd_db)
    assert result.rows == 3 and np.isfinite(result.seconds)
    # said once for the store too (the columns just disappeared from the headline)
    assert any("eq: 6 input file(s) of its done pairs not found" in n
               and "--inputs-dir" in n for n in result.notes), result.notes


def test_a_clip_too_short_for_a_metric_leaves_that_metric_empty_not_the_report(tmp_path):
    """An output of 0.1 s is under the judge's frame: its judge columns stay empty with a
    note, the other pair and the other metrics are reported (before: the report stopped)."""
    from pathlib import Path

    t = np.arange(int(0.1 * 16000)) / 16000
    sf.write(tmp_path / "short.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 16000)
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "long.wav", 0.3 * np.sin(2 * np.pi * 220 * t), 16000)
    (tmp_path / "m.csv").write_text("pair_id,content,style\nshort,short.wav,long.wav\n"
                                    "fine,long.wav,long.wav\n")
    jobs = Path(__file__).resolve().parents[2] / "jobs"
    store = tmp_path / "s.zarr"
    assert main(["run", str(tmp_path / "m.csv"), "-o", str(store), "--job",
                 str(jobs / "content-copy.toml"), "--workers", "1",
                 "--progress-interval", "0"]) == 0
    out = tmp_path / "rep"
    assert main(["report", str(store), "-o", str(out), "--metrics", "spectral,judge",
                 "--quiet"]) == 0
    rows = pd.read_csv(out / "pairs.csv").set_index("pair_id")
    assert "judge:" in rows.loc["short", "notes"] and math.isnan(rows.loc["short", "judge_prob"])
    assert math.isfinite(rows.loc["short", "centroid_ratio"])
    assert math.isfinite(rows.loc["fine", "judge_prob"])


def test_stores_of_other_inputs_under_the_same_pair_ids_get_sections_of_their_own(
        real_stores, tmp_path):
    """A store of another manifest with the same pair ids was shown beside the first store's
    inputs and labels; two store names that clean up to one folder name shared (and
    overwrote) their figures and audio."""
    import re
    import shutil

    from hpc_nst.cli import main
    from hpc_nst.report.build import ReportOptions, build_report
    from tests.report.conftest import ROOT, TRIPLETS

    other = tmp_path / "other"
    (other / "audio").mkdir(parents=True)
    for pid, src in (("s256-000", "s256-002"), ("s256-001", "s256-003")):  # other files
        for role in ("content", "style", "target"):
            shutil.copy(TRIPLETS / "audio" / f"{src}_{role}.flac",
                        other / "audio" / f"{pid}_{role}.flac")
    (other / "manifest.csv").write_text(
        "pair_id,content,style,target\n"
        + "".join(f"{p},audio/{p}_content.flac,audio/{p}_style.flac,audio/{p}_target.flac\n"
                  for p in ("s256-000", "s256-001")))
    assert main(["run", str(other / "manifest.csv"), "-o", str(tmp_path / "my eq#1%.zarr"),
                 "--job", str(ROOT / "jobs" / "eq.toml"), "--workers", "1", "--quiet",
                 "--progress-interval", "0"]) == 0
    shutil.copytree(real_stores["eq"], tmp_path / "my_eq_1_.zarr")
    result = build_report([tmp_path / "my_eq_1_.zarr", tmp_path / "my eq#1%.zarr"],
                          tmp_path / "r", ReportOptions(groups=("spectral",), details=10))
    page = (tmp_path / "r" / "index.html").read_text()
    sections = re.findall(r'<section class="pair" id="([^"]+)"><h3>([^<]+)</h3>', page)
    assert sorted(h.split(" — ")[0] for _, h in sections) == [
        "s256-000", "s256-000 (my eq#1%-2&#x27;s inputs)", "s256-001",
        "s256-001 (my eq#1%-2&#x27;s inputs)"], sections
    assert len({i for i, _ in sections}) == 4  # (anchors of their own)
    assert any("name other input files" in n for n in result.notes)
    assert sorted(p.name for p in (tmp_path / "r" / "figures").iterdir()) == \
        ["my_eq_1_", "my_eq_1_-2"]
    for job in ("my_eq_1_", "my_eq_1_-2"):
        assert len(list((tmp_path / "r" / "audio" / job).glob("*.flac"))) == 2
