import json

import numpy as np
import pytest
import soundfile as sf

from hpc_nst.cli import main

TINY = [
    "--set",
    "model=random",
    "--set",
    "width=4",
    "--set",
    "iterations=3",
    "--set",
    "griffin_lim_iterations=3",
]


def test_transfer_writes_audio_json_and_figure(wav_pair, tmp_path, capsys):
    content, style = wav_pair
    out = tmp_path / "out" / "result.wav"
    fig = tmp_path / "fig.png"
    rc = main(["transfer", str(content), str(style), "-o", str(out), "--figure", str(fig), *TINY])
    assert rc == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) == sf.info(content).frames
    report = json.loads(out.with_suffix(".json").read_text())
    assert len(report["losses"]["total"]) == 4
    assert {"content", "style", "envelope", "timbre"} <= set(report["losses"])
    assert report["job"]["optim"]["iterations"] == 3 and report["timings"]["ms_per_iteration"] > 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    err = capsys.readouterr().err
    assert "iter     1/3" in err


def test_quiet_prints_nothing(wav_pair, tmp_path, capsys):
    content, style = wav_pair
    assert (
        main(
            ["transfer", str(content), str(style), "-o", str(tmp_path / "o.wav"), "--quiet", *TINY]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def _corrupt(p):
    p.write_bytes(b"RIFF" + bytes(range(256)) * 4)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (None, "file not found"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (_corrupt, "unreadable audio"),
        (lambda p: sf.write(p, np.zeros(200, np.float32), 16000), "too short"),
        (
            lambda p: sf.write(
                p, np.array([0.1, np.inf] * 800, np.float32), 16000, subtype="FLOAT"
            ),
            "NaN or Inf",
        ),
    ],
)
def test_bad_input_exits_nonzero_with_one_line_and_no_output(
    wav_pair, tmp_path, capsys, make, problem
):
    content, _ = wav_pair
    bad = tmp_path / "bad.wav"
    if make:
        make(bad)
    out = tmp_path / "res" / "out.wav"
    rc = main(["transfer", str(content), str(bad), "-o", str(out), *TINY])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(bad) in err[0] and problem in err[0]
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_silent_input_runs_without_nan_and_is_named(tmp_path, wav_pair, capsys):
    content, _ = wav_pair
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    out = tmp_path / "o.wav"
    assert main(["transfer", str(silent), str(silent), "-o", str(out), "--quiet", *TINY]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert all(np.isfinite(v).all() for v in report["losses"].values())
    assert np.isfinite(sf.read(out)[0]).all()
    err = capsys.readouterr().err
    assert f"the content {silent} is silent" in err and f"the style {silent} is silent" in err


def test_bad_job_key_is_named(wav_pair, tmp_path, capsys):
    content, style = wav_pair
    rc = main(
        [
            "transfer",
            str(content),
            str(style),
            "-o",
            str(tmp_path / "o.wav"),
            "--set",
            "iteratons=3",
        ]
    )
    assert rc == 2
    assert "iteratons: unknown key" in capsys.readouterr().err
