"""Known answers of the target distances (LSD, timbre, dynamics) and the pitch distance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from hpc_nst.config import JobConfig
from hpc_nst.engine.methods import static_eq
from hpc_nst.metrics import pitch, reference

SR = 16000


def tone(f0: float, seconds: float = 1.0, partials: int = 80, decay: float = 2.0,
         env: np.ndarray | None = None) -> np.ndarray:
    """A sawtooth-like tone with a little noise, a 10 ms attack and an envelope (like a note)."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, partials + 1) if f0 * k < 7900)
    x = x + 0.01 * np.random.default_rng(0).standard_normal(len(t))
    x = x * (np.exp(-decay * t) if env is None else env) * np.minimum(1.0, t / 0.01)
    return (0.3 * x).astype(np.float32)


def sine(f: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_identical_signals_are_at_distance_zero():
    x = tone(220)
    d = reference.compare(reference.features(x), reference.features(x))
    assert d == {"lsd_db": 0.0, "lsd_dynamics_db": 0.0, "timbre_mfcc": pytest.approx(0, abs=1e-6),
                 "timbre_dynamics_db": 0.0}


def test_gain_change_is_invisible_after_rms_normalisation():
    x = tone(220)
    for gain in (0.01, 3.0):
        assert reference.lsd(gain * x, x) == pytest.approx(0.0, abs=1e-3)
        assert reference.lsd_dynamics(gain * x, x) == pytest.approx(0.0, abs=1e-3)
        assert reference.timbre_distance(gain * x, x) == pytest.approx(0.0, abs=1e-5)
        assert reference.dynamics_distance(gain * x, x) == pytest.approx(0.0, abs=1e-3)


def test_lsd_matches_the_written_out_definition():
    """Cífka et al.: RMS-normalise, mel power dB (amin 1e-10, top_db 80), band RMS, mean."""
    import librosa

    a, b = tone(220), tone(330, decay=4.0)
    spec = [librosa.power_to_db(librosa.feature.melspectrogram(
        y=x / (np.sqrt(np.mean(x.astype(np.float64) ** 2)) + np.finfo(np.float32).eps), sr=SR,
        n_fft=2048, hop_length=512, n_mels=128), ref=1.0, amin=1e-10, top_db=80.0) for x in (a, b)]
    expected = np.mean(np.sqrt(np.mean((spec[0] - spec[1]) ** 2, axis=1)))
    assert reference.lsd(a, b) == pytest.approx(expected, rel=1e-6)
    assert reference.lsd(a, b) > 5.0


def test_output_is_padded_or_truncated_to_the_target():
    x = tone(220)
    assert reference.lsd(np.concatenate([x, np.ones(1000, np.float32)]), x) == 0.0
    short = x[: len(x) - 800]
    assert reference.lsd(short, x) == pytest.approx(
        reference.lsd(np.pad(short, (0, 800)), x), abs=1e-9)


def test_static_eq_fools_mfcc_timbre_but_not_the_dynamics_variants():
    """The baseline of NOTES.md: filtering content towards the style's average spectrum."""
    b, a = scipy.signal.butter(2, 800, fs=SR)
    content = tone(220, decay=2.0)
    style = scipy.signal.lfilter(b, a, tone(330, env=np.ones(SR))).astype(np.float32)
    eq = static_eq(content, style, JobConfig())
    before = reference.compare(reference.features(content), reference.features(style))
    after = reference.compare(reference.features(eq), reference.features(style))
    assert after["timbre_mfcc"] < 0.5 * before["timbre_mfcc"]  # fooled
    assert after["timbre_dynamics_db"] > 0.8 * before["timbre_dynamics_db"]  # not fooled
    assert after["lsd_dynamics_db"] > 0.8 * before["lsd_dynamics_db"]


def test_dynamics_distances_see_amplitude_modulation_not_a_gentle_filter():
    x = tone(220, seconds=1.0, decay=2.0)
    b, a = scipy.signal.butter(1, 2000, fs=SR)  # a first-order tilt: static EQ
    filtered = scipy.signal.lfilter(b, a, x).astype(np.float32)
    t = np.arange(SR) / SR
    tremolo = tone(220, env=np.exp(-2 * t) * (0.5 - 0.5 * np.sin(2 * np.pi * 6 * t)))
    eq_d = reference.compare(reference.features(filtered), reference.features(x))
    am_d = reference.compare(reference.features(tremolo), reference.features(x))
    assert eq_d["timbre_dynamics_db"] < 0.25 * am_d["timbre_dynamics_db"]
    assert eq_d["lsd_dynamics_db"] < 0.25 * am_d["lsd_dynamics_db"]
    assert eq_d["lsd_db"] > eq_d["lsd_dynamics_db"]  # plain LSD does see the filter


def test_timbre_distance_of_a_sine_and_a_rich_tone_is_large():
    assert reference.timbre_distance(sine(220, 1.0), tone(220)) > 0.3


def test_pitch_distance_known_answers():
    a = sine(440.0)
    assert pitch.pitch_distance(a, a) == 0.0
    assert pitch.pitch_distance(a, sine(880.0)) == pytest.approx(1.0)  # one octave up
    assert pitch.pitch_distance(0.05 * a, a) == 0.0  # level does not matter
    # Silence against silence is no error; silence against a note is a full error per frame.
    silent = np.zeros_like(a)
    assert pitch.pitch_distance(silent, silent) == 0.0
    assert pitch.pitch_distance(silent, a) == pytest.approx(1.0, abs=0.1)
    # First half right, second half a fifth off: about 0.5.
    half = np.concatenate([sine(440.0, 0.5), sine(440.0, 0.5)])
    other = np.concatenate([sine(440.0, 0.5), sine(659.26, 0.5)])
    assert pitch.pitch_distance(other, half) == pytest.approx(0.5, abs=0.08)


def test_pitch_sets_name_the_midi_note():
    sets = pitch.pitch_sets(sine(440.0))
    assert len(sets) == pitch.n_frames(len(sine(440.0)))
    voiced = [s for s in sets if s]
    assert len(voiced) > 0.8 * len(sets) and all(s == frozenset({69}) for s in voiced)


def test_jaccard_distance_on_sets():
    a = [frozenset({60, 64}), frozenset(), frozenset({67}), frozenset()]
    b = [frozenset({60}), frozenset(), frozenset({68}), frozenset({70})]
    assert pitch.jaccard_distance(a, b) == pytest.approx((0.5 + 0 + 1 + 1) / 4)
    with pytest.raises(ValueError):
        pitch.jaccard_distance(a, b[:2])
