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


def test_outputs_are_checked_before_the_work_and_nothing_is_replaced(wav_pair, tmp_path,
                                                                     capsys):
    """`-o` naming the content replaced it; an unknown audio or figure format, or a figure
    folder that cannot be made, failed with a traceback after the work, losing the audio."""
    content, style = wav_pair
    before = content.read_bytes()

    def refused(*extra: str) -> str:
        assert main(["transfer", str(content), str(style), "--quiet", *TINY, *extra]) == 2
        return capsys.readouterr().err

    assert "that is an input of this transfer" in refused("-o", str(content), "--overwrite")
    assert content.read_bytes() == before
    assert "is not an audio format soundfile writes" in refused("-o", str(tmp_path / "x.xyz"))
    assert "--figure" in refused("-o", str(tmp_path / "a.wav"), "--figure",
                                 str(tmp_path / "f.xyz"))
    assert "--figure /proc/nope/f.png: cannot make its folder" in refused(
        "-o", str(tmp_path / "a.wav"), "--figure", "/proc/nope/f.png")
    assert not list(tmp_path.glob("a.*"))  # refused before anything was written
    out = tmp_path / "a.wav"
    args = ["transfer", str(content), str(style), "-o", str(out), "--quiet", *TINY]
    assert main(args) == 0
    first = out.read_bytes()
    assert f"-o {out}: exists; add --overwrite" in refused("-o", str(out))
    assert out.read_bytes() == first
    assert main([*args, "--overwrite", "--set", "method=eq"]) == 0 and out.read_bytes() != first


def test_a_method_without_optimisation_draws_three_panels(wav_pair, tmp_path):
    from PIL import Image

    content, style = wav_pair
    widths = []
    for job in ("paper", "eq"):
        fig = tmp_path / f"{job}.png"
        assert main(["transfer", str(content), str(style), "-o", str(tmp_path / f"{job}.wav"),
                     "--figure", str(fig), "--job", job, "--quiet", *TINY]) == 0
        widths.append(Image.open(fig).width)
    assert abs(widths[1] / widths[0] - 0.75) < 0.02


def test_a_method_that_does_not_optimise_prints_its_summary_and_exits_0(wav_pair, tmp_path,
                                                                         capsys):
    """Every per-pair job ended in KeyError: 'ms_per_iteration' (exit 1) after writing its
    output, unless --quiet: a script took the run for failed."""
    content, style = wav_pair
    out = tmp_path / "o.wav"
    assert main(["transfer", str(content), str(style), "-o", str(out), "--job", "eq"]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "method eq" in printed and "ms/iteration" not in printed
    assert main(["transfer", str(content), str(style), "-o", str(tmp_path / "z.wav"), *TINY,
                 "--set", "iterations=0"]) == 0
    assert "ms/iteration" not in capsys.readouterr().out  # (no iteration to time)


def test_device_outputs_and_sample_rate_are_checked_before_any_work(wav_pair, tmp_path,
                                                                   capsys):
    content, style = wav_pair
    base = ["transfer", str(content), str(style)]
    with pytest.raises(SystemExit) as exc:
        main([*base, "-o", str(tmp_path / "a.wav"), "--device", "bogus"])
    assert exc.value.code == 2 and "choose auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    folder, figures = tmp_path / "taken.wav", tmp_path / "fig.png"
    folder.mkdir()
    figures.mkdir()
    for extra, text in ((["-o", str(folder), "--overwrite"], "is a folder"),
                        (["-o", str(tmp_path / "a.wav"), "--figure", str(figures),
                          "--overwrite"], "is a folder"),
                        (["-o", str(tmp_path / "a.raw")], "not an audio format soundfile"),
                        (["-o", str(tmp_path / "a.wav"), "--job", "sampler", "--set",
                          "stft.sample_rate=22050"], "method sampler works at 16000 Hz only")):
        assert main([*base, *extra, "--job", "eq"] if "--job" not in extra
                    else [*base, *extra]) == 2, extra
        assert text in capsys.readouterr().err
    assert not (tmp_path / "a.wav").exists()
    import torch

    if not torch.cuda.is_available():
        assert main([*base, "-o", str(tmp_path / "a.wav"), "--job", "eq", "--device",
                     "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "a.wav"), "--log-file", str(folder)]) == 2
    assert "--log-file" in capsys.readouterr().err


def test_a_silent_style_and_unread_settings(wav_pair, tmp_path, capsys, caplog):
    """eq with a silent style gives silence, rightly (not refused as a note-based method's
    silence); --set keys of the optimisation given to eq are named as unread."""
    content, _ = wav_pair
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    assert main(["transfer", str(content), str(silent), "-o", str(tmp_path / "o.wav"),
                 "--job", "eq", "--set", "iterations=3", "--set", "seed=2"]) == 0
    assert "--set iterations: method eq does not optimise and never reads it" in caplog.text
    assert "seed" not in caplog.text.split("--set iterations")[1].split("\n")[0].split(":")[0]


def test_verbose_logs_each_stage_and_warnings_read_as_the_commands_own(wav_pair, tmp_path,
                                                                       capsys):
    """-v said nothing more for transfer; a warning of a logger printed a timestamp and a
    module path where the command's own messages read "hpc-nst ...: warning: ..."."""
    content, style = wav_pair
    out = tmp_path / "o.wav"
    assert main(["-v", "transfer", str(content), str(style), "-o", str(out), "--quiet",
                 *TINY]) == 0
    err = capsys.readouterr().err
    for line in ("INFO hpc_nst.cli.transfer_cmd: job (default): method nst, digest",
                 f"content {content}: 0.60 s, style {style}: 0.50 s (at 16000 Hz)",
                 "ran on cpu: features_s",
                 f"wrote {out} and {out.with_suffix('.json')}"):
        assert line in err, line
    assert main(["transfer", str(content), str(style), "-o", str(tmp_path / "eq.wav"),
                 "--quiet", "--job", "eq", "--set", "iterations=3"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("hpc-nst: warning: --set iterations: method eq does not optimise")
    assert "INFO" not in err


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_transfer(
        wav_pair, tmp_path, capsys, monkeypatch):
    """A read-only output folder gave a traceback (exit 1) after the whole computation."""
    import errno
    import tempfile

    from hpc_nst.engine import methods

    def read_only(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 (a read-only mount)
        raise OSError(errno.EROFS, "Read-only file system", str(kwargs.get("dir")))

    ran = []
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    monkeypatch.setattr(methods, "run_method", lambda *a, **k: ran.append(1))
    content, style = wav_pair
    out = tmp_path / "ro" / "x.wav"
    assert main(["transfer", str(content), str(style), "-o", str(out), *TINY]) == 2
    err = capsys.readouterr().err
    assert f"-o {out}: its folder cannot be written to (Read-only file system (" in err
    assert not ran


def test_a_file_system_error_is_one_line_and_exit_2_not_a_traceback(tmp_path, capsys):
    """`hpc-nst manifest -o` into a read-only place printed OSError's traceback (exit 1)."""
    (tmp_path / "afile").write_text("")
    (tmp_path / "c").mkdir()
    sf.write(tmp_path / "c" / "a.wav", np.zeros(1600, np.float32), 16000)
    rc = main(["manifest", "--content", str(tmp_path / "c"), "--style", str(tmp_path / "c"),
               "-o", str(tmp_path / "afile" / "m.csv")])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert "hpc-nst manifest: error:" in err and "choose another path" in err
