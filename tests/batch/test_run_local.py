"""End to end on a local cluster: mixed lengths, broken rows, resuming, refusing, retrying."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf
import xarray as xr

from hpc_nst.batch import store as st
from hpc_nst.batch.runner import RunOptions, run_batch
from hpc_nst.cli import main

from .conftest import SR, TINY, tone, write_csv

pytestmark = pytest.mark.slow

ROWS = [
    "good1,a.wav,b.wav,",          # 2
    "good2,d.wav,c.wav,",          # 3: the longest content
    "good3,e44k.flac,a.wav,7",     # 4: 44.1 kHz input, its own seed
    "good4,c.wav,d.wav,",          # 5: the shortest content
    "missing,nope.wav,a.wav,",     # 6: invalid: file not found
    "garbage,garbage.wav,a.wav,",  # 7: invalid: not audio
    "short,a.wav,short.wav,",      # 8: invalid: too short
    "truncated,truncated.flac,b.wav,",  # 9: header fine, fails when the worker decodes it
    "nan,a.wav,nan.wav,",          # 10: NaN samples, found by the worker
]


def _cli(*args: str) -> int:
    return main(["run", *args, *[x for s in TINY for x in ("--set", s)], "--workers", "1",
                 "--progress-interval", "0"])


def test_mixed_lengths_broken_rows_rerun_refuse_export(tmp_path, audio_dir, capsys):
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style,seed", ROWS)
    store = tmp_path / "out.zarr"
    # Invalid rows: refused with every problem listed, nothing created.
    assert _cli(str(manifest), "-o", str(store)) == 2
    err = capsys.readouterr().err
    for line, text in ((6, "file not found"), (7, "unreadable audio"), (8, "too short")):
        assert f"line {line}: pair " in err and text in err
    assert ": 3 problem(s):" in err  # the three rows; the advice after them is not counted
    assert "--skip-invalid" in err and not store.exists()

    assert _cli(str(manifest), "-o", str(store), "--skip-invalid", "--batch-size", "2") == 1
    err = capsys.readouterr().err
    assert "4 done" in err and "5 failed" in err and "[hpc-nst run]" in err
    ds = xr.open_zarr(store)
    status = dict(zip(ds.pair.values, ds.status.values))
    assert {k for k, v in status.items() if v == st.DONE} == {"good1", "good2", "good3", "good4"}
    errors = dict(zip(ds.pair.values, ds.error.values))
    assert "nope.wav: file not found" in errors["missing"]
    assert "garbage.wav: unreadable audio" in errors["garbage"]
    assert "short.wav: too short" in errors["short"]
    assert errors["truncated"].startswith("content ") and "truncated.flac" in errors["truncated"]
    assert errors["nan"].startswith("style ") and "NaN" in errors["nan"]
    for pid, path in (("good1", "a.wav"), ("good2", "d.wav"), ("good4", "c.wav")):
        n = sf.info(str(audio_dir / path)).frames
        row = ds.sel(pair=pid)
        assert int(row.samples) == n
        assert list(row.frames.values) == [1 + n // 160, int(row.frames[1]), 1 + n // 160,
                                           1 + n // 160]
        audio = row.audio.values
        assert np.isfinite(audio[:n]).all() and not audio[n:].any()
        out = row.spectrogram.sel(kind="output").values
        assert out[:, : 1 + n // 160].any() and not out[:, 1 + n // 160:].any()
        assert int(row.records) == 4 and np.isfinite(row.loss.values[:, :4]).all()
    assert int(ds.sel(pair="good3").seed) == 7 and ds.sel(pair="good3").device == "cpu"
    assert int(ds.sel(pair="truncated").attempts) == 1 and int(ds.sel(pair="missing").attempts) == 0
    first = ds.timings.sel(timing="finished_at").values.copy()

    # The same command again: nothing is recomputed.
    assert _cli(str(manifest), "-o", str(store), "--skip-invalid", "--batch-size", "2") == 1
    err = capsys.readouterr().err
    assert "this run: 0 pairs" in err and "4 already done" in err
    again = xr.open_zarr(store)
    np.testing.assert_array_equal(again.timings.sel(timing="finished_at").values, first)
    np.testing.assert_array_equal(again.attempts.values, ds.attempts.values)

    # A changed job is refused with the differing key named.
    assert main(["run", str(manifest), "-o", str(store), "--skip-invalid",
                 *[x for s in TINY for x in ("--set", s)], "--set", "style_weight=2"]) == 2
    assert "loss.style_weight: store has 100.0, this run 2.0" in capsys.readouterr().err

    # status and export
    assert main(["status", str(store)]) == 0
    out = capsys.readouterr().out
    assert "done 4, failed 5, pending 0" in out and "truncated (manifest line 9" in out
    assert main(["export", str(store), "-o", str(tmp_path / "wav"), "--format", "flac"]) == 0
    files = sorted(p.name for p in (tmp_path / "wav").iterdir())
    assert files == [".export.files.json", ".export.json", "good1.flac", "good2.flac",
                     "good3.flac", "good4.flac", "metadata.jsonl"]
    assert sf.info(str(tmp_path / "wav" / "good2.flac")).frames == \
        sf.info(str(audio_dir / "d.wav")).frames
    assert main(["export", str(store), "-o", str(tmp_path / "wav"), "--format", "flac"]) == 0
    assert "kept 4 existing" in capsys.readouterr().out


def test_retry_failed_and_divergence(tmp_path, audio_dir, local_client, capsys):
    rows = ["ok,a.wav,b.wav,", "truncated,truncated.flac,b.wav,", "nan,a.wav,nan.wav,",
            "diverge,c.wav,a.wav,1e39"]
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style,style_weight", rows)
    store = tmp_path / "r.zarr"
    from hpc_nst.config import load_job

    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    opts = RunOptions(batch_size=4, batches_per_task=1, progress_interval=0)
    first = run_batch(manifest, store, cfg, opts, client=local_client)
    assert (first.done, first.failed, first.exit_code) == (1, 3, 1)
    failures = {pid: err for pid, _, err in first.failures}
    assert "diverged" in failures["diverge"]
    # Fix one input (a longer file than the store was sized for) and retry the failed pairs.
    sf.write(audio_dir / "truncated.flac", tone(180, 2.0), SR)
    again = run_batch(manifest, store, cfg, opts, client=local_client)
    assert again.ran == 0 and again.failed == 3  # failed pairs are not retried by default
    retry = run_batch(manifest, store, cfg, RunOptions(batch_size=4, retry_failed=True,
                                                       progress_interval=0),
                      client=local_client)
    assert (retry.ran, retry.done, retry.failed) == (3, 2, 2)
    ds = xr.open_zarr(store)
    row = ds.sel(pair="truncated")
    assert int(row.status) == st.DONE and int(row.attempts) == 2 and row.error == ""
    assert int(row.samples) == 2 * SR and ds.sizes["sample"] >= 2 * SR
    assert int(ds.sel(pair="ok").attempts) == 1  # untouched in its shard
    assert int(ds.sel(pair="nan").attempts) == 2 and int(ds.sel(pair="diverge").attempts) == 2


def test_store_moved_aside_is_not_overwritten(tmp_path, audio_dir, local_client):
    """A second store of the same manifest is independent; the first one is never touched."""
    manifest = write_csv(audio_dir / "m.csv", "content,style", ["a.wav,b.wav"])
    from hpc_nst.config import load_job

    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    opts = RunOptions(progress_interval=0, quiet=True)
    a = run_batch(manifest, tmp_path / "a.zarr", cfg, opts, client=local_client)
    shutil.copytree(tmp_path / "a.zarr", tmp_path / "b.zarr")
    b = run_batch(manifest, tmp_path / "b.zarr", cfg, opts, client=local_client)
    assert a.done == b.done == 1 and b.ran == 0


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_file_gets_worker_and_driver_records(tmp_path, audio_dir, where):
    """-v/--log-file (before the command or after it): the worker's records (a skipped pair)
    reach the driver's log."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         ["ok,a.wav,b.wav", "truncated,truncated.flac,b.wav"])
    log = tmp_path / "logs" / "run.log"
    flags = ["-v", "--log-file", str(log)]
    argv = [*flags * (where == "before"), "run", str(manifest), "-o", str(tmp_path / "l.zarr"),
            *[x for s in TINY for x in ("--set", s)], "--workers", "1",
            "--progress-interval", "0", *flags * (where == "after")]
    assert main(argv) == 1
    text = log.read_text()
    assert "pair truncated skipped: content" in text and "truncated.flac" in text
    assert "WARNING hpc_nst.batch.dispatch: shard 0" in text


def test_user_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["run", str(tmp_path / "none.csv"), "-o", str(tmp_path / "x.zarr"),
                 "--set", "method=nts"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hpc-nst run: error: method: unknown method 'nts'")


def test_a_moved_dataset_resumes_and_its_labels_follow(tmp_path, capsys):
    """The dataset folder moved (or mounted elsewhere): the resume matched, but the store kept
    the old manifest path, so export lost labels.csv and report the inputs."""
    import json

    old = tmp_path / "old"
    old.mkdir()
    for name, f0 in (("a", 220), ("b", 330)):
        sf.write(old / f"{name}.wav", tone(f0, 0.4), SR)
    (old / "m.csv").write_text("pair_id,content,style\np1,a.wav,b.wav\np2,b.wav,a.wav\n")
    (old / "labels.csv").write_text("pair_id,content_label,style_label\np1,Flute,Harp\n"
                                    "p2,Harp,Flute\n")
    store = tmp_path / "s.zarr"
    assert main(["run", str(old / "m.csv"), "-o", str(store), "--job", "eq", "--quiet"]) == 0
    new = tmp_path / "new"
    old.rename(new)
    assert main(["run", str(new / "m.csv"), "-o", str(store), "--job", "eq"]) == 0
    assert f"the manifest is now {new / 'm.csv'} (was {old / 'm.csv'}): recorded" in \
        capsys.readouterr().err
    recorded = json.loads(xr.open_zarr(store).attrs["manifest"])
    assert recorded["path"] == str(new / "m.csv")
    assert recorded["previous_path"] == str(old / "m.csv")
    assert main(["export", str(store), "-o", str(tmp_path / "x")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "x" / "metadata.jsonl").open()]
    assert {r["pair_id"]: r["style_label"] for r in rows} == {"p1": "Harp", "p2": "Flute"}
    # another dataset of the same pair ids and paths (other files): not recorded (report
    # and export took its targets and labels for outputs of the first), unless recomputed
    other = tmp_path / "other"
    other.mkdir()
    for name, f0 in (("a", 440), ("b", 550)):
        sf.write(other / f"{name}.wav", tone(f0, 0.7), SR)
    (other / "m.csv").write_text("pair_id,content,style,target\np1,a.wav,b.wav,a.wav\n"
                                 "p2,b.wav,a.wav,\n")  # (its targets: not recorded either)
    (other / "labels.csv").write_text("pair_id,content_label,style_label\np1,Oboe,Tuba\n"
                                      "p2,Tuba,Oboe\n")
    capsys.readouterr()
    assert main(["run", str(other / "m.csv"), "-o", str(store), "--job", "eq"]) == 0
    err = capsys.readouterr().err
    assert "names other input files than the 2 done pair(s) were computed from: not " \
           "recorded as the store's manifest" in err and "the manifest is now" not in err
    assert json.loads(xr.open_zarr(store).attrs["manifest"])["path"] == str(new / "m.csv")
    assert [str(t) for t in xr.open_zarr(store).target_path.values] == ["", ""]
    assert main(["run", str(other / "m.csv"), "-o", str(store), "--job", "eq",
                 "--recompute-changed"]) == 0
    assert f"the manifest is now {other / 'm.csv'}" in capsys.readouterr().err
    assert json.loads(xr.open_zarr(store).attrs["manifest"])["path"] == str(other / "m.csv")


def test_an_invalid_row_corrected_in_the_manifest_runs_with_retry_failed(tmp_path, capsys):
    """docs/store.md promised that an invalid row that became valid runs with --retry-failed,
    but correcting the row itself (a bad override, a wrong path) was refused as "created
    from a different manifest"."""
    for name, f0 in (("a", 220), ("b", 330)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.4), SR)
    manifest = tmp_path / "m.csv"
    header = "pair_id,content,style,iterations,split\n"
    manifest.write_text(header + "p1,a.wav,b.wav,,train\np2,b.wav,nope.wav,,test\n"
                        "p3,a.wav,a.wav,abc,test\n")
    store = tmp_path / "s.zarr"
    sets = [x for s in TINY for x in ("--set", s)]
    args = ["run", str(manifest), "-o", str(store), *sets, "--workers", "1",
            "--progress-interval", "0"]
    assert main([*args, "--skip-invalid"]) == 1
    ran_before = xr.open_zarr(store).status.values.tolist()
    assert sorted(ran_before) == [st.DONE, st.FAILED, st.FAILED]
    # p1 itself changed (it ran): still refused
    manifest.write_text(header + "p1,b.wav,b.wav,,train\np2,b.wav,a.wav,,test\n"
                        "p3,a.wav,a.wav,2,test\n")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 pair(s) with other inputs or parameters than in the store: p1 (line 2)" in err
    assert "rows that were invalid and never ran may be corrected in place" in err
    manifest.write_text(header + "p1,a.wav,b.wav,,train\np2,b.wav,a.wav,,val\n"
                        "p3,a.wav,a.wav,2,test\n")
    assert main(args) == 1  # corrected, but not retried without --retry-failed
    assert "2 row(s) invalid before, changed in the manifest: updated in the store; 2 of " \
           "them valid now (they run with --retry-failed)" in capsys.readouterr().err
    assert main([*args, "--retry-failed"]) == 0
    ds = xr.open_zarr(store)
    assert (ds.status.values == st.DONE).all()
    by_id = {str(p): i for i, p in enumerate(ds.pair.values)}
    assert str(ds.style_path.values[by_id["p2"]]) == "a.wav"
    assert "val" in ds.metadata.values[by_id["p2"]].tolist()
    assert '"iterations": 2' in str(ds.params.values[by_id["p3"]])
    assert main(["verify", str(store)]) == 0


def test_a_corrected_row_the_store_cannot_hold_is_refused_before_any_write(tmp_path, capsys):
    for name, f0 in (("a", 220), ("b", 330)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.4), SR)
    manifest = tmp_path / "m.csv"
    manifest.write_text("pair_id,content,style,iterations\np1,a.wav,b.wav,\n"
                        "p2,b.wav,a.wav,abc\n")
    store = tmp_path / "s.zarr"
    args = ["run", str(manifest), "-o", str(store), *[x for s in TINY for x in ("--set", s)],
            "--workers", "1", "--progress-interval", "0"]
    assert main([*args, "--skip-invalid"]) == 1
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    manifest.write_text("pair_id,content,style,iterations\np1,a.wav,b.wav,\n"
                        "p2,b.wav,a.wav,500\n")  # far more loss records than TINY's 3
    assert main([*args, "--retry-failed"]) == 2
    err = capsys.readouterr().err
    assert "the corrected row p2 (line 3) records" in err and "nothing was changed" in err
    after = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    assert after == before


def _eq_store(tmp_path, third: str, header: str, rows: list[str]):  # noqa: ANN001, ANN202
    """Tones a.wav, b.wav and ``third``.wav, a manifest of ``rows`` and a done eq store of it;
    returns the store and the command line that made it."""
    for name, f0 in (("a", 220), ("b", 330), (third, 440)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.4), SR)
    manifest = write_csv(tmp_path / "m.csv", header, rows)
    store = tmp_path / "s.zarr"
    args = ["run", str(manifest), "-o", str(store), "--job", "eq", "--quiet"]
    assert main(args) == 0
    return store, args


def test_done_pairs_whose_input_files_changed_are_named_and_recomputed_on_request(
        tmp_path, caplog, capsys):
    """Input files replaced under the same paths (a dataset regenerated): the rerun said
    "already done" and kept the outputs of the old files without a word."""
    store, args = _eq_store(tmp_path, "c", "pair_id,content,style",
                            ["p1,a.wav,b.wav", "p2,c.wav,b.wav"])
    before = xr.open_zarr(store).audio.values.copy()
    sf.write(tmp_path / "a.wav", tone(550, 0.5), SR)  # p1's content replaced
    assert main(args) == 0
    assert "1 done pair(s) computed from input files that changed since (size or " \
           "modification time; e.g. p1): their outputs are of the old files; rerun with " \
           "--recompute-changed" in caplog.text
    np.testing.assert_array_equal(xr.open_zarr(store).audio.values, before)  # kept as it was
    caplog.clear()
    assert main([*args, "--recompute-changed"]) == 0
    ds = xr.open_zarr(store)
    by_id = {str(p): i for i, p in enumerate(ds.pair.values)}
    assert int(ds.samples.values[by_id["p1"]]) == int(0.5 * SR)  # computed from the new file
    n = before.shape[1]  # (the store's sample axis grew for the longer file)
    np.testing.assert_array_equal(ds.audio.values[by_id["p2"], :n], before[by_id["p2"]])
    assert main(args) == 0 and "changed since" not in caplog.text  # the stamps are current
    assert main(["verify", str(store)]) == 0


def test_changed_inputs_in_the_dry_run_and_what_does_not_count_as_a_change(tmp_path, capsys,
                                                                           caplog):
    store, args = _eq_store(tmp_path, "t", "pair_id,content,style,target",
                            ["p1,a.wav,b.wav,t.wav", "p2,b.wav,a.wav,"])
    sf.write(tmp_path / "t.wav", tone(660, 0.4), SR)  # a target: the transfer never reads it
    assert main(args) == 0 and "changed since" not in caplog.text
    sf.write(tmp_path / "b.wav", tone(550, 0.5), SR)  # both pairs read b.wav
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 done pair(s) computed from input files that changed since: kept as they are" in out
    assert "2 already done, 0 to run" in out
    assert main([*args, "--dry-run", "--recompute-changed"]) == 0
    out = capsys.readouterr().out
    assert "counted to run again (--recompute-changed)" in out and "0 already done, 2 to run" \
        in out.replace("(0 invalid, ", "")
    assert main(args) == 0 and "2 done pair(s) computed from input files that changed" in \
        caplog.text  # the dry run wrote nothing: the run still finds them
    assert main([*args, "--recompute-changed"]) == 0  # now on the new b.wav
    caplog.clear()
    (tmp_path / "a.wav").rename(tmp_path / "a.bak")  # missing now: not a change (the pairs
    assert main([*args, "--skip-invalid", "--recompute-changed"]) == 0  # stay done)
    assert "changed since" not in caplog.text
    assert (xr.open_zarr(store).status.values == st.DONE).all()


def test_a_target_changed_in_the_manifest_is_recorded_and_the_outputs_kept(tmp_path, capsys):
    """A corrected `target` column (read by the report only) was ignored on a rerun: the
    store kept the old target, and the report measured against it."""
    store, args = _eq_store(tmp_path, "t", "pair_id,content,style,target",
                            ["p1,a.wav,b.wav,t.wav", "p2,b.wav,a.wav,"])
    before = xr.open_zarr(store).audio.values.copy()
    sf.write(tmp_path / "u.wav", tone(660, 0.4), SR)
    write_csv(tmp_path / "m.csv", "pair_id,content,style,target",
              ["p1,a.wav,b.wav,u.wav", "p2,b.wav,a.wav,t.wav"])
    assert main([a for a in args if a != "--quiet"]) == 0
    assert "the target of 2 pair(s) changed in the manifest: recorded" in capsys.readouterr().err
    ds = xr.open_zarr(store)
    assert [str(t) for t in ds.target_path.values] == ["u.wav", "t.wav"]
    np.testing.assert_array_equal(ds.audio.values, before)  # nothing computed again
    assert main(args) == 0 and "target of" not in capsys.readouterr().err
    assert main(["verify", str(store)]) == 0


def test_edited_labels_and_metadata_are_recorded_by_a_rerun_and_read_from_the_store(
        tmp_path, capsys, caplog):
    """An edited manifest (a label, a split) was accepted by a rerun without a word and not
    recorded, while export and report read the labels from the file as it is now: one
    exported row mixed the new label with the stored split, and xarray disagreed."""
    import pandas as pd

    store, args = _eq_store(tmp_path, "t", "pair_id,content,style,content_label,split",
                            ["p1,a.wav,b.wav,Flute,test", "p2,b.wav,a.wav,Harp,train"])
    before = xr.open_zarr(store).audio.values.copy()
    write_csv(tmp_path / "m.csv", "pair_id,content,style,content_label,split",
              ["p1,a.wav,b.wav,Piccolo,train", "p2,b.wav,a.wav,Harp,train"])

    def exported() -> list[tuple[str, str, str]]:
        out = tmp_path / "ex"
        assert main(["export", str(store), "-o", str(out), "--format", "parquet",
                     "--overwrite"]) == 0
        rows = pd.read_parquet(out / "data.parquet")
        return list(zip(rows["pair_id"], rows["content_label"], rows["split"]))

    # not rerun yet: the store's labels and metadata, consistently, and a warning
    assert exported() == [("p1", "Flute", "test"), ("p2", "Harp", "train")]
    assert f"edited since {store} last ran" in caplog.text
    caplog.clear()
    assert main([a for a in args if a != "--quiet"]) == 0
    assert "the metadata (labels, ...) of 1 pair(s) changed in the manifest: recorded" in \
        capsys.readouterr().err
    ds = xr.open_zarr(store)
    assert ds.metadata.values.tolist() == [["Piccolo", "train"], ["Harp", "train"]]
    np.testing.assert_array_equal(ds.audio.values, before)  # nothing computed again
    assert exported() == [("p1", "Piccolo", "train"), ("p2", "Harp", "train")]
    assert "edited since" not in caplog.text  # the rerun recorded the file's digest
    # a column added since the store was made has no place in it: said, not dropped silently
    write_csv(tmp_path / "m.csv", "pair_id,content,style,content_label,split,source",
              ["p1,a.wav,b.wav,Piccolo,train,x", "p2,b.wav,a.wav,Harp,train,y"])
    assert main(args) == 0
    assert "the manifest has column(s) the store was made without (source)" in caplog.text
    assert main(["verify", str(store)]) == 0


def test_done_pairs_whose_input_files_are_gone_do_not_block_the_rerun(tmp_path, caplog,
                                                                      capsys):
    """A scratch purge after the run: the rerun refused the whole manifest for a done pair's
    missing content (exit 2), and with --skip-invalid said it was recorded as failed while it
    stayed done. Paths written `./a.wav` and a link left dangling are such files too."""
    for name, f0 in (("a", 220), ("b", 330), ("real", 440)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.4), SR)
    (tmp_path / "link.wav").symlink_to(tmp_path / "real.wav")
    manifest = write_csv(tmp_path / "m.csv", "pair_id,content,style",
                         ["p1,./a.wav,b.wav", "p2,b.wav,link.wav"])
    store = tmp_path / "s.zarr"
    args = ["run", str(manifest), "-o", str(store), "--job", "eq", "--quiet"]
    assert main(args) == 0
    before = xr.open_zarr(store).audio.values.copy()
    (tmp_path / "a.wav").unlink()
    (tmp_path / "real.wav").unlink()  # link.wav dangles now
    capsys.readouterr()
    assert main([*args, "--dry-run"]) == 0
    assert "(0 invalid, 2 already done, 0 to run)" in capsys.readouterr().out
    assert main(args) == 0
    assert "2 done pair(s) name input files that are not there now (e.g. p1: content " in \
        caplog.text
    ds = xr.open_zarr(store)
    assert (ds.status.values == st.DONE).all()
    np.testing.assert_array_equal(ds.audio.values, before)
    # a pair still to compute whose file is gone is refused as before, only it is named,
    # and the kept pairs' warning is not given for a run that does not go ahead
    root = st.open_root(store, mode="r+")
    ids = [str(x) for x in root["pair"][:]]
    status = root["status"][:]
    status[ids.index("p2")] = st.PENDING
    root["status"][...] = status
    caplog.clear()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pair p2: style" in err and "pair p1" not in err
    assert "name input files that are not there now" not in caplog.text


def test_a_killed_writes_partial_files_are_removed_by_the_rerun(tmp_path, caplog):
    """zarr writes each chunk to `<chunk>.<uuid>.partial` and renames it; a SIGKILL mid-write
    left that file (up to a shard's size) in the store for ever, through every rerun."""
    import os
    import time

    store, args = _eq_store(tmp_path, "c", "pair_id,content,style",
                            ["p1,a.wav,b.wav", "p2,b.wav,c.wav"])
    shard = next(p for p in (store / "audio" / "c").rglob("*") if p.is_file())
    old = shard.with_suffix(f".{'a' * 32}.partial")
    old.write_bytes(b"x" * 1000)
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    fresh = shard.with_suffix(f".{'b' * 32}.partial")  # a straggler may still write it
    fresh.write_bytes(b"y")
    mine = store / "notes.partial"  # not zarr's name: not touched
    mine.write_bytes(b"z")
    os.utime(mine, (hour_ago, hour_ago))
    caplog.set_level("INFO", logger="hpc_nst.batch.locations")
    assert main(args) == 0
    assert not old.exists() and fresh.exists() and mine.exists()
    assert "removed 1 file(s) (0.0 MB) of chunk writes killed mid-way" in caplog.text
    assert main(["verify", str(store)]) == 0


def test_a_label_column_added_after_the_run_is_named_and_not_half_applied(tmp_path, caplog):
    """A label column added to the manifest of a store that keeps metadata was read from the
    file as it is now (its later edits too, beside the recorded split), while the rerun said
    report and export would not see it."""
    import json

    store, args = _eq_store(tmp_path, "c", "pair_id,content,style,split",
                            ["p1,a.wav,b.wav,test", "p2,b.wav,c.wav,train"])
    write_csv(tmp_path / "m.csv", "pair_id,content,style,split,content_label",
              ["p1,a.wav,b.wav,test,Flute", "p2,b.wav,c.wav,train,Harp"])
    assert main(args) == 0
    assert "the manifest has column(s) the store was made without (content_label)" in \
        caplog.text
    assert main(["export", str(store), "-o", str(tmp_path / "x")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "x" / "metadata.jsonl").open()]
    assert all(r.get("content_label") in (None, "") for r in rows)
    assert sorted(r["split"] for r in rows) == ["test", "train"]
