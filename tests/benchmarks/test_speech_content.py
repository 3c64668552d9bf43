"""benchmarks/speech_content.py: espeak-ng renders speech with a moving pitch, and the contour
measure says what it claims (kept, an octave away, silenced)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmarks.loader import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("speech_content")


@pytest.fixture(scope="module")
def speech(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("speech") / "s.wav"
    return bench.speak(bench.SENTENCES[0], bench.VOICES[0], 50, out)


def test_espeak_speech_is_cut_to_length_voiced_and_moves_in_pitch(bench, speech):
    import librosa

    assert speech.dtype == np.float32 and len(speech) == int(bench.SECONDS * bench.SR)
    f0, voiced, _ = librosa.pyin(speech, fmin=65, fmax=600, sr=bench.SR, frame_length=1024,
                                 hop_length=256)
    assert voiced.mean() > 0.3  # speech, not silence or noise
    cents = 1200 * np.log2(f0[voiced] / np.median(f0[voiced]))
    assert np.percentile(cents, 90) - np.percentile(cents, 10) > 100  # prosody: it glides


def test_the_contour_measure(bench, speech):
    same = bench.contour(speech, speech)
    assert same["within_50c"] == 1.0 and same["median_cents"] == 0.0
    assert same["voiced_kept"] == 1.0
    import librosa

    octave_up = librosa.effects.pitch_shift(speech, sr=bench.SR, n_steps=12)
    up = bench.contour(octave_up, speech)
    assert up["within_50c"] < 0.3 and up["median_cents"] > 900
    silent = bench.contour(np.zeros_like(speech), speech)
    assert silent["voiced_kept"] == 0.0 and np.isnan(silent["within_50c"])
