"""Bad (and odd but fine) inputs, one row each: a manifest's text and the audio it names.

Each case writes a manifest with the case's row (or header) plus one good row and reads it as
``hpc-nst run`` does; a bad row must carry the exact problem (file and what to do) while the
good row stays valid, a fatal file-level problem must name its line, and an odd-but-fine input
must load. Problems only visible when decoding (a truncated FLAC, NaN samples) are checked
through the worker's loader, which fails that pair alone (see test_run_local.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hpc_nst.audio.io import load_audio
from hpc_nst.batch.manifest import read_manifest
from hpc_nst.errors import AudioError, ManifestError

from .conftest import SR, tone

GOOD = "good.wav"


def _wav(path: Path, data: np.ndarray, sr: int = SR, **kw) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, **kw)
    return path.name


def _header_only(d: Path) -> str:
    _wav(d / "hdr.wav", np.zeros(0, np.float32))
    return "hdr.wav"


def _fifo(d: Path) -> str:
    os.mkfifo(d / "pipe.wav")
    return "pipe.wav"


def _loop(d: Path) -> str:
    (d / "loop1.wav").symlink_to(d / "loop2.wav")
    (d / "loop2.wav").symlink_to(d / "loop1.wav")
    return "loop1.wav"


def _signal(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1) if channels > 1 else x


#: name -> (make the content file in DIR and return its manifest path, expected problem or None)
AUDIO: dict[str, tuple[Callable[[Path], str], str | None]] = {
    "empty file": (lambda d: (d / "e.wav").write_bytes(b"") and "e.wav" or "e.wav",
                   "e.wav: empty file (0 bytes); re-export or remove the row"),
    "header only": (_header_only,
                    "hdr.wav: contains no samples (a header only); re-export or remove the row"),
    "text renamed .wav": (lambda d: (d / "t.wav").write_text("hello") and "t.wav",
                          "t.wav: unreadable audio ("),
    "missing file": (lambda d: "nope.wav", "nope.wav: file not found (relative paths resolve "
                     "against the manifest's folder); fix the path or copy the file there"),
    "a directory": (lambda d: (d / "dir.wav").mkdir() or "dir.wav",
                    "dir.wav: is a directory, not an audio file; name a file inside it"),
    "symlink loop": (_loop, "loop1.wav: broken or looping symbolic link; point it (or the "
                            "manifest) at an audio file"),
    "FIFO": (_fifo, "pipe.wav: not a regular file (a pipe, socket or device); write the audio "
                    "to a file first"),
    "20 ms (under one frame)": (lambda d: _wav(d / "s.wav", _signal(0.02)),
                                "s.wav: too short (320 samples at 16000 Hz; one STFT frame "
                                "needs 480 at 16000 Hz)"),
    "24-bit PCM": (lambda d: _wav(d / "p24.wav", _signal(0.5), subtype="PCM_24"), None),
    "32-bit float": (lambda d: _wav(d / "f32.wav", _signal(0.5), subtype="FLOAT"), None),
    "8 channels": (lambda d: _wav(d / "c8.wav", _signal(0.5, channels=8)), None),
    "8 kHz": (lambda d: _wav(d / "k8.wav", _signal(0.5, 8000), 8000), None),
    "96 kHz": (lambda d: _wav(d / "k96.wav", _signal(0.5, 96000), 96000), None),
    "FLAC": (lambda d: _wav(d / "x.flac", _signal(0.5)), None),
    "OGG Vorbis": (lambda d: _wav(d / "x.ogg", _signal(0.5)), None),
    "MP3": (lambda d: _wav(d / "x.mp3", _signal(0.5)), None),
    "0.1 s": (lambda d: _wav(d / "short.wav", _signal(0.1)), None),
    "10 minutes": (lambda d: _wav(d / "long.wav", _signal(600.0), subtype="PCM_16"), None),
    "all silence": (lambda d: _wav(d / "z.wav", np.zeros(SR, np.float32)), None),
    "DC only": (lambda d: _wav(d / "dc.wav", np.full(SR, 0.5, np.float32)), None),
    "clipped": (lambda d: _wav(d / "clip.wav", np.clip(3 * _signal(0.5), -1, 1)), None),
    "unicode and spaces": (lambda d: "sous dossier/" + _wav(d / "sous dossier" / "été 1.wav",
                                                            _signal(0.5)), None),
}


@pytest.mark.parametrize("case", list(AUDIO))
def test_audio_in_a_manifest(tmp_path, tiny, case):
    make, problem = AUDIO[case]
    d = tmp_path / "in"
    d.mkdir()
    _wav(d / GOOD, tone(220, 0.5))
    name = make(d)
    m = d / "m.csv"
    m.write_text(f'pair_id,content,style\nbad,"{name}",{GOOD}\nok,{GOOD},{GOOD}\n',
                 encoding="utf-8")
    man = read_manifest(m, tiny)
    bad, ok = man.pairs
    assert ok.error is None
    if problem is None:
        assert bad.error is None, bad.error
        audio = load_audio(bad.content_path, SR, min_samples=tiny.stft.win_length)
        assert audio.ndim == 1 and np.isfinite(audio).all() and len(audio) > 0
        assert bad.content_samples == pytest.approx(len(audio), abs=2)
    else:
        assert bad.error and bad.error.startswith(f"content {d / problem.split(':')[0]}:"), \
            bad.error
        assert problem.split(": ", 1)[1] in bad.error
        assert man.problems[0].startswith("line 2: pair bad: content ")


#: name -> (manifest bytes, expected fatal problem or None, expected pairs when fine)
MANIFEST: dict[str, tuple[bytes, str | None, int]] = {
    "UTF-8 BOM": ("\ufeffcontent,style\ngood.wav,good.wav\n".encode(), None, 1),
    "CRLF line ends": (b"content,style\r\ngood.wav,good.wav\r\n", None, 1),
    "Latin-1 bytes": (b"content,style\ngood.wav,good.wav\n\xe9t\xe9.wav,good.wav\n",
                      "line 3: not valid UTF-8 text", 0),
    "semicolons": (b"content;style\ngood.wav;good.wav\n",
                   "line 1: the header 'content;style' looks separated by ';'", 0),
    "tabs": (b"content\tstyle\ngood.wav\tgood.wav\n", "looks separated by '\\t'", 0),
    "quoted comma in a path": (b'content,style\n"a, b.wav",good.wav\n', None, 1),
    "blank and comment lines": (b"content,style\n\n# a note\ngood.wav,good.wav\n\n", None, 1),
    "missing column": (b"content\ngood.wav\n", "line 1: missing required column 'style'", 0),
    "duplicate column": (b"content,style,style\ngood.wav,good.wav,good.wav\n",
                         "line 1: column 'style' appears twice", 0),
    "misspelt column": (b"content,stlye\ngood.wav,good.wav\n",
                        "line 1: unknown column 'stlye' (column 2): did you mean 'style'?", 0),
    "no rows": (b"content,style\n", "no rows after the header", 0),
    "unbalanced quote": (b'content,style\n"good.wav,good.wav\n', "malformed CSV", 0),
}


@pytest.mark.parametrize("case", list(MANIFEST))
def test_manifest_text(tmp_path, tiny, case):
    raw, problem, pairs = MANIFEST[case]
    _wav(tmp_path / GOOD, tone(220, 0.5))
    _wav(tmp_path / "a, b.wav", tone(220, 0.5))
    m = tmp_path / "m.csv"
    m.write_bytes(raw)
    if problem is None:
        man = read_manifest(m, tiny)
        assert len(man.valid) == pairs and not man.problems
    else:
        with pytest.raises(ManifestError) as info:
            read_manifest(m, tiny)
        assert problem in str(info.value), str(info.value)


def test_relative_paths_resolve_against_the_manifest_folder(tmp_path, tiny):
    _wav(tmp_path / "audio" / GOOD, tone(220, 0.5))
    (tmp_path / "lists").mkdir()
    m = tmp_path / "lists" / "m.csv"
    m.write_text("content,style\n../audio/good.wav,../audio/good.wav\n")
    man = read_manifest(m, tiny)
    assert not man.problems and man.pairs[0].content_path.resolve() == \
        (tmp_path / "audio" / GOOD).resolve()


def test_100000_rows(tmp_path, tiny):
    _wav(tmp_path / GOOD, tone(220, 0.5))
    m = tmp_path / "m.csv"
    m.write_text("pair_id,content,style\n"
                 + "".join(f"p{i},{GOOD},{GOOD}\n" for i in range(100_000)))
    man = read_manifest(m, tiny)
    assert len(man.valid) == 100_000 and not man.problems


@pytest.mark.parametrize(("case", "data", "problem"), [
    ("NaN samples", np.array([0.1, np.nan] * 800, np.float32), "contains NaN or Inf samples"),
    ("Inf samples", np.array([0.1, np.inf] * 800, np.float32), "contains NaN or Inf samples"),
])
def test_decode_time_problems_name_the_file(tmp_path, case, data, problem):
    path = tmp_path / "x.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match=problem) as info:
        load_audio(path, SR)
    assert str(path) in str(info.value)


def test_truncated_flac_fails_when_decoded(tmp_path):
    sf.write(tmp_path / "full.flac", tone(300, 1.0), SR)
    raw = (tmp_path / "full.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(AudioError, match=r"cut\.flac: unreadable audio"):
        load_audio(tmp_path / "cut.flac", SR)


@pytest.mark.parametrize("case", ["all zeros", "stereo channels that cancel"])
def test_a_silent_input_fails_its_pair_alone_naming_the_file(tmp_path, tiny, case):
    """A silent content or style would be stored as a 'done' output of silence or noise:
    the worker's loader fails that pair alone, naming the file and what to do."""
    from hpc_nst.batch.results import PairSpec
    from hpc_nst.batch.worker import _load_batch

    x = _signal(0.5)
    silent = np.zeros_like(x) if case == "all zeros" else np.stack([x, -x], axis=1)
    _wav(tmp_path / "quiet.wav", silent, subtype="FLOAT")
    _wav(tmp_path / GOOD, tone(220, 0.5))
    q, g = str(tmp_path / "quiet.wav"), str(tmp_path / GOOD)
    pairs = (PairSpec(0, "silent-style", g, q, 0), PairSpec(1, "silent-content", q, g, 0),
             PairSpec(2, "fine", g, g, 0))
    items, errors, _ = _load_batch(tiny, pairs)
    assert [p.pair_id for p, _, _ in items] == ["fine"]
    assert errors[0].startswith(f"style {q}: silent after mixing to mono"), errors[0]
    assert errors[1].startswith(f"content {q}: silent"), errors[1]
    assert "give a recording with sound" in errors[0]
