"""SoundFont rendering, tuning forks and the committed demo files (manifests/make_demo.py)."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hpc_nst.data import soundfont as sfmod
from hpc_nst.data.soundfont import (
    GM_PROGRAM_NAMES,
    default_soundfont,
    playable_range,
    render_notes,
    tuning_fork,
)

SR = 16000
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


def _load_make_demo():
    spec = importlib.util.spec_from_file_location("make_demo", MANIFESTS / "make_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module




def fft_peak_hz(x: np.ndarray, lo: float = 50.0, hi: float = 4000.0) -> float:
    """Frequency of the largest spectral peak in [lo, hi], with parabolic interpolation."""
    n_fft = 1 << 17
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x)), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SR)
    band = np.flatnonzero((freqs >= lo) & (freqs <= hi))
    k = band[np.argmax(mag[band])]
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * SR / n_fft


def autocorr_f0_hz(x: np.ndarray, lo: float = 60.0, hi: float = 1500.0) -> float:
    """Fundamental from the first autocorrelation peak within 90 % of the highest one."""
    x = x - x.mean()
    spec = np.fft.rfft(x, 2 * len(x))
    r = np.fft.irfft(np.abs(spec) ** 2)[: len(x)]
    r = r / r[0]
    lmin, lmax = int(SR / hi), int(SR / lo)
    seg = r[lmin:lmax]
    peaks = [i for i in range(1, len(seg) - 1) if seg[i - 1] < seg[i] >= seg[i + 1]]
    best = max(seg[i] for i in peaks)
    k = lmin + next(i for i in peaks if seg[i] >= 0.9 * best)
    a, b, c = r[k - 1 : k + 2]
    return SR / (k + 0.5 * (a - c) / (a - 2 * b + c))


def midi_hz(pitch: int) -> float:
    return 440.0 * 2.0 ** ((pitch - 69) / 12)


# --- no FluidSynth needed -----------------------------------------------------------------


def test_missing_soundfont_error_names_path_and_package(monkeypatch, tmp_path):
    missing = tmp_path / "nowhere.sf2"
    monkeypatch.setenv(sfmod.SOUNDFONT_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match="fluid-soundfont-gm") as info:
        default_soundfont()
    assert str(missing) in str(info.value)
    assert sfmod.SOUNDFONT_ENV in str(info.value)
    with pytest.raises(FileNotFoundError, match="nowhere.sf2"):
        render_notes([(69, 0.0, 0.5, 100)], 73, soundfont=missing)


def test_default_path_missing_is_reported(monkeypatch, tmp_path):
    monkeypatch.delenv(sfmod.SOUNDFONT_ENV, raising=False)
    monkeypatch.setattr(sfmod, "DEFAULT_SOUNDFONT", tmp_path / "FluidR3_GM.sf2")
    with pytest.raises(FileNotFoundError, match=r"FluidR3_GM\.sf2.*fluid-soundfont-gm"):
        default_soundfont()


def test_env_overrides_default(monkeypatch, tmp_path):
    fake = tmp_path / "mine.sf2"
    fake.write_bytes(b"RIFF\x04\x00\x00\x00sfbk")  # a SoundFont's header
    monkeypatch.setenv(sfmod.SOUNDFONT_ENV, str(fake))
    assert default_soundfont() == fake


def test_a_file_that_is_not_a_soundfont_is_named(tmp_path, capsys):
    """fluidsynth rendered silence from it: `dataset triplets` wrote a silent benchmark with
    exit 0, train-judge crashed with an IndexError."""
    from hpc_nst.cli import main
    from hpc_nst.errors import AudioError

    fake = tmp_path / "fake.sf2"
    fake.write_text("hello\n")
    with pytest.raises(AudioError, match="not a SoundFont"):
        sfmod.check_soundfont(fake, "test")
    assert main(["dataset", "triplets", str(tmp_path / "t"), "--count", "1", "--soundfont",
                 str(fake)]) == 2
    assert f"{fake} (--soundfont): not a SoundFont" in capsys.readouterr().err
    assert not (tmp_path / "t" / "manifest.csv").exists()
    assert main(["train-judge", "-o", str(tmp_path / "j.npz"), "--renders", "2",
                 "--soundfont", str(fake)]) == 2
    assert "not a SoundFont" in capsys.readouterr().err


def test_gm_names_and_ranges():
    assert len(GM_PROGRAM_NAMES) == 128 == len(set(GM_PROGRAM_NAMES))
    assert GM_PROGRAM_NAMES[0] == "Acoustic Grand Piano"
    assert GM_PROGRAM_NAMES[40] == "Violin"
    assert GM_PROGRAM_NAMES[46] == "Orchestral Harp"
    assert GM_PROGRAM_NAMES[52] == "Choir Aahs"
    assert GM_PROGRAM_NAMES[73] == "Flute"
    assert GM_PROGRAM_NAMES[127] == "Gunshot"
    for program in range(128):
        lo, hi = playable_range(program)
        assert 0 <= lo < hi <= 127, program
    assert playable_range(0) == (21, 108)
    assert playable_range(40)[0] == 55  # violin: lowest string G3
    assert playable_range(43)[0] < playable_range(42)[0] < playable_range(41)[0]
    for program in (40, 46, 52, 53, 73):
        lo, hi = playable_range(program)
        assert lo <= 64 <= hi  # the demo phrases sit in these ranges
    with pytest.raises(ValueError):
        playable_range(128)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"notes": [(69, 0.0, 0.5, 100)], "program": 128},
        {"notes": [(69, 0.0, 0.5, 100)], "program": -1},
        {"notes": [(128, 0.0, 0.5, 100)], "program": 0},
        {"notes": [(69, 0.5, 0.5, 100)], "program": 0},
        {"notes": [(69, -0.1, 0.5, 100)], "program": 0},
        {"notes": [(69, 0.0, 0.5, 0)], "program": 0},
        {"notes": [(69, 0.0, 0.5)], "program": 0},
        {"notes": [(69, 0.0, 0.5, 100)], "program": 0, "duration": -1.0},
    ],
)
def test_render_rejects_bad_input(kwargs):
    with pytest.raises(ValueError):
        render_notes(**kwargs)


def test_tuning_fork_frequency_decay_and_attack():
    x = tuning_fork(440.0, seconds=2.56, sample_rate=SR, decay_s=1.5)
    assert x.dtype == np.float32 and x.shape == (40960,)
    assert np.isclose(np.abs(x).max(), 0.9, atol=1e-6)
    assert abs(fft_peak_hz(x) - 440.0) < 0.5
    assert abs(autocorr_f0_hz(x) - 440.0) < 1.0

    def rms(t0: float) -> float:  # 0.1 s = 44 whole periods of 440 Hz
        return float(np.sqrt(np.mean(x[int(t0 * SR) : int((t0 + 0.1) * SR)] ** 2)))

    assert rms(1.5) / rms(0.5) == pytest.approx(np.exp(-1.0 / 1.5), rel=0.01)
    assert x[0] == 0.0
    attack = np.abs(x[: int(0.005 * SR)])
    assert attack.max() < 0.9 and np.abs(x[: int(0.02 * SR)]).max() > 0.85


def test_tuning_fork_rejects_above_nyquist():
    with pytest.raises(ValueError):
        tuning_fork(9000.0, sample_rate=SR)


# --- FluidSynth rendering -----------------------------------------------------------------


def test_flute_a4_is_440_hz(soundfont):
    x = render_notes([(69, 0.0, 1.0, 100)], 73, sample_rate=SR, soundfont=soundfont)
    steady = x[int(0.2 * SR) : int(0.8 * SR)]
    assert fft_peak_hz(steady) == pytest.approx(440.0, rel=0.02)
    assert autocorr_f0_hz(steady) == pytest.approx(440.0, rel=0.02)


@pytest.mark.parametrize(("program", "pitch"), [(40, 69), (46, 60), (52, 64), (53, 60), (42, 48)])
def test_fundamental_matches_pitch(soundfont, program, pitch):
    x = render_notes([(pitch, 0.0, 1.0, 100)], program, duration=1.0)
    f0 = autocorr_f0_hz(x[int(0.2 * SR) : int(0.8 * SR)])
    assert f0 == pytest.approx(midi_hz(pitch), rel=0.03), GM_PROGRAM_NAMES[program]


def test_render_is_deterministic(soundfont):
    notes = [(60, 0.0, 0.6, 90), (64, 0.3, 0.9, 80), (67, 0.6, 1.2, 100)]
    first = render_notes(notes, 46, duration=1.5)
    second = render_notes(notes, 46, duration=1.5)
    assert first.tobytes() == second.tobytes()


def test_duration_trim_pad_and_peak(soundfont):
    notes = [(69, 0.0, 0.3, 100)]
    natural = render_notes(notes, 73)
    assert natural.dtype == np.float32 and natural.ndim == 1
    assert len(natural) >= int(1.3 * SR)  # note plus one second of release
    assert np.abs(natural).max() == pytest.approx(0.9, abs=1e-6)
    assert render_notes(notes, 73, duration=0.25).shape == (4000,)
    padded = render_notes(notes, 73, duration=3.0)
    assert padded.shape == (48000,) and not padded[-SR // 4 :].any()
    assert np.abs(padded).max() == pytest.approx(0.9, abs=1e-6)


def test_silence_is_not_normalised(soundfont):
    assert render_notes([], 0, duration=0.5).tolist() == [0.0] * 8000
    assert render_notes([], 0).shape == (0,)
    late = render_notes([(69, 1.0, 1.5, 100)], 73, duration=0.5)
    assert np.isfinite(late).all() and not late.any()


def test_make_demo_is_deterministic(soundfont, tmp_path):
    make_demo = _load_make_demo()
    first = make_demo.demo_clips(SR, soundfont)
    second = make_demo.demo_clips(SR, soundfont)
    assert first.keys() == second.keys() == {"harp", "tuning_fork", "voice", "violin"}
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), name
    paths = make_demo.write_demo(tmp_path, soundfont)
    again = make_demo.write_demo(tmp_path / "again", soundfont)
    for name, path in paths.items():
        assert make_demo.decoded_sha256(path) == make_demo.decoded_sha256(again[name])
    assert (tmp_path / "demo.csv").read_text() == (MANIFESTS / "demo.csv").read_text()


# --- committed demo files (no FluidSynth needed) ------------------------------------------


def _demo_rows() -> list[dict[str, str]]:
    with open(MANIFESTS / "demo.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_demo_csv_lists_the_two_pairs():
    rows = _demo_rows()
    assert [r["pair_id"] for r in rows] == ["harp_fork", "voice_violin"]
    assert rows[0]["content"] == "demo/harp.flac" and rows[0]["style"] == "demo/tuning_fork.flac"
    assert rows[1]["content"] == "demo/voice.flac" and rows[1]["style"] == "demo/violin.flac"
    assert (MANIFESTS / "demo" / "LICENSE-FluidR3.txt").is_file()


def test_committed_demo_files_are_16k_mono_and_short():
    rows = _demo_rows()
    for rel in [r[col] for r in rows for col in ("content", "style")]:
        path = MANIFESTS / rel
        info = sf.info(str(path))
        assert info.format == "FLAC" and info.samplerate == SR and info.channels == 1, rel
        assert info.frames == int(round(2.56 * SR)), rel
        assert path.stat().st_size < 100_000, rel
        audio, _ = sf.read(str(path), dtype="float32")
        assert 0.85 < np.abs(audio).max() <= 0.9 + 1e-3, rel


def test_committed_demo_bandwidth_ordering():
    make_demo = _load_make_demo()
    bw = {}
    for name in ("harp", "tuning_fork", "voice", "violin"):
        audio, rate = sf.read(str(MANIFESTS / "demo" / f"{name}.flac"), dtype="float32")
        bw[name] = make_demo.spectral_bandwidth(audio, rate, n_fft=512)
    assert bw["harp"] > 5 * bw["tuning_fork"]
    assert bw["voice"] < bw["violin"]
