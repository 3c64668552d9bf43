"""``hpc-nst classify``: output format, windows of long files, errors."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hpc_nst.cli import main
from hpc_nst.config import STFTConfig
from hpc_nst.models.alexnet import AudioAlexNet
from hpc_nst.models.checkpoint import save_checkpoint
from hpc_nst.train.classify import classify_audio, top_k, window_bounds

CLASSES = ["Acoustic Grand Piano", "Violin", "Flute", "Cello", "Oboe", "Harp"]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clf") / "clf.pt"
    save_checkpoint(AudioAlexNet(len(CLASSES), 4), path, STFTConfig(), {"classes": CLASSES})
    return path


@pytest.fixture(scope="module")
def long_file(tiny_gm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6.12 s: two rendered clips and one second of a third."""
    with tiny_gm.open() as fh:
        rows = list(csv.DictReader(fh))
    clips = [sf.read(tiny_gm.parent / rows[k]["path"], dtype="float32")[0] for k in (0, 10, 20)]
    path = tmp_path_factory.mktemp("audio") / "long.wav"
    sf.write(path, np.concatenate([clips[0], clips[1], clips[2][:16000]]), 16000)
    return path


def test_window_bounds() -> None:
    assert window_bounds(257) == [(0, 257)]
    assert window_bounds(613) == [(0, 257), (256, 513), (512, 613)]
    assert window_bounds(300) == [(0, 257)]  # a 0.43 s tail is left out
    assert window_bounds(30) == [(0, 30)]


def test_classify_audio_probabilities(model_path: Path) -> None:
    from hpc_nst.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(model_path)
    audio = np.random.default_rng(0).normal(0, 0.1, 16000 * 6).astype(np.float32)
    result = classify_audio(model, audio, STFTConfig())
    assert [(round(s, 2), round(e, 2)) for s, e, _ in result.windows] == [
        (0.0, 2.56), (2.56, 5.12), (5.12, 6.0)]
    for _, _, p in result.windows:
        assert p.shape == (6,) and p.sum() == pytest.approx(1.0, abs=1e-5)
    assert result.overall.sum() == pytest.approx(1.0, abs=1e-5)
    ranked = top_k(result.overall, CLASSES)
    assert len(ranked) == 5 and ranked[0][1] >= ranked[-1][1]


def test_cli_text_output(model_path: Path, long_file: Path, tiny_gm: Path, capsys) -> None:
    short = sorted((tiny_gm.parent / "audio").glob("*/*.flac"))[0]
    assert main(["classify", str(long_file), str(short), "--model", str(model_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{long_file} (6.12 s)"
    entry = r"(\S.*? \d+\.\d%  ){4}\S.*? \d+\.\d%"
    assert re.fullmatch(r"\s+0\.00-\s+2\.56 s  " + entry, lines[1])
    assert re.fullmatch(r"\s+2\.56-\s+5\.12 s  " + entry, lines[2])
    assert re.fullmatch(r"\s+5\.12-\s+6\.12 s  " + entry, lines[3])
    assert re.fullmatch(r"  overall\s+" + entry, lines[4])
    assert lines[5] == f"{short} (2.56 s)"
    assert re.fullmatch(r"  overall\s+" + entry, lines[6])  # one window: overall only
    assert len(lines) == 7


def test_cli_json_output(model_path: Path, long_file: Path, capsys) -> None:
    assert main(["classify", str(long_file), "--model", str(model_path), "--json",
                 "--top", "3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["file"] == str(long_file) and record["duration_s"] == 6.12
    assert len(record["top"]) == 3 and len(record["windows"]) == 3
    assert {t["label"] for t in record["top"]} <= set(CLASSES)


def test_cli_errors(model_path: Path, long_file: Path, tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.wav"
    code = main(["classify", str(long_file), str(missing), "--model", str(model_path)])
    captured = capsys.readouterr()
    assert code == 2
    assert f"error: {missing}: file not found" in captured.err  # (stdout: the results only)
    assert "1 of 2 file(s) could not be read" in captured.err
    assert main(["classify", str(long_file), str(missing), "--model", str(model_path),
                 "--json"]) == 2
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["file"] == str(long_file) and records[0]["top"]
    assert records[1] == {"file": str(missing), "error": f"{missing}: file not found"}
    untrained = tmp_path / "random.pt"
    save_checkpoint(AudioAlexNet(80, 4), untrained, STFTConfig(), {})
    assert main(["classify", str(long_file), "--model", str(untrained)]) == 2
    assert "no class names" in capsys.readouterr().err
    assert main(["classify", str(long_file), "--model", str(tmp_path / "nope.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_silent_file_names_no_instrument(model_path: Path, long_file: Path, tmp_path: Path,
                                         capsys) -> None:
    """It used to name an instrument (with a confident probability) for digital silence."""
    import json

    import numpy as np
    import soundfile as sf

    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    assert main(["classify", str(silent), str(long_file), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert f"{silent}: silent (no sample above 1e-05): no instrument" in out
    assert f"{long_file} (" in out  # the other file is still classified
    assert main(["classify", str(silent), "--model", str(model_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"file": str(silent), "silent": True,
                                                   "duration_s": 1.0, "top": [],
                                                   "windows": []}


def test_the_shipped_classifier_by_name(long_file: Path, capsys) -> None:
    """README names it `classifier` (alias `default`), as --set model= takes it: classify
    took the word for a file name ("checkpoint not found")."""
    from hpc_nst.models.checkpoint import DEFAULT_CHECKPOINT

    if not DEFAULT_CHECKPOINT.is_file():
        pytest.fail("the shipped classifier is missing from the package")
    for name in ("classifier", "default"):
        assert main(["classify", str(long_file), "--model", name, "--top", "1"]) == 0
        assert "overall" in capsys.readouterr().out


def test_a_file_named_classifier_is_that_file(model_path: Path, long_file: Path, tmp_path: Path,
                                              monkeypatch, capsys) -> None:
    import json
    import shutil

    monkeypatch.chdir(tmp_path)
    shutil.copy(model_path, tmp_path / "classifier")
    assert main(["classify", str(long_file), "--model", "classifier", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert {t["label"] for t in record["top"]} <= set(CLASSES)  # the file's classes


def test_a_silent_window_does_not_weigh_in_the_overall_verdict(model_path: Path,
                                                               long_file: Path) -> None:
    """2.56 s of silence before a clip halved the overall probability of its instrument
    (the network names an instrument for silence too)."""
    from hpc_nst.models.checkpoint import load_checkpoint

    stft = STFTConfig()
    model, _ = load_checkpoint(model_path, stft)
    clip = sf.read(long_file, dtype="float32")[0][: 60_000]
    padded = np.concatenate([np.zeros(45_000, np.float32), clip])  # window 0 silent
    skipped = classify_audio(model, padded, stft, skip_silent=True)
    plain = classify_audio(model, padded, stft)
    probs = [p for _, _, p in plain.windows]
    assert len(probs) == 3 and len(skipped.windows) == 3  # the silent window still listed
    from hpc_nst.audio.spectrogram import log_magnitude

    _, *rest = window_bounds(log_magnitude(torch.from_numpy(padded), stft).shape[-1])
    sizes = np.array([e - s for s, e in rest], float)
    expected = (np.stack(probs[1:]) * sizes[:, None]).sum(0) / sizes.sum()
    np.testing.assert_allclose(skipped.overall, expected, rtol=1e-5)
    assert not np.allclose(plain.overall, expected, rtol=1e-5)
    silent = classify_audio(model, np.zeros(41_000, np.float32), stft, skip_silent=True)
    assert np.isfinite(silent.overall).all()  # all silent: the plain mean
