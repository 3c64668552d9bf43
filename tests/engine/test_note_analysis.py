"""The note reading both resynthesis methods share: onsets without the f0 track's slips."""

from __future__ import annotations

import numpy as np
import pytest

from hpc_nst.engine import note_analysis as N

SR = N.SR


def _decaying_note_with_a_slip(rise_db: float) -> tuple[np.ndarray, np.ndarray]:
    """(f0, frame RMS) of a decaying 220 Hz note whose track reads 440 Hz from frame 50 on
    (the second harmonic), where the level rises by ``rise_db`` (0: a slip in the decay)."""
    t = np.arange(100 * N.HOP) / SR
    env = np.exp(-t / 0.4) * np.where(t >= 50 * N.HOP / SR, 10 ** (rise_db / 20), 1.0)
    rms = N.frame_rms(0.3 * env * np.sin(2 * np.pi * 220.0 * t))
    f0 = np.full(len(rms), 220.0)
    f0[50:] = 440.0
    return f0, rms


@pytest.mark.parametrize("other, slip", [(440.0, True), (220.0 * 2 ** (19 / 12), True),
                                         (110.0, True), (220.0, True),
                                         (220.0 * 2 ** (7 / 12), False), (300.0, False)])
def test_an_onset_without_attack_is_dropped_only_at_a_harmonic_interval(other, slip):
    f0, rms = _decaying_note_with_a_slip(rise_db=0.0)
    f0[50:] = other
    kept = N.without_slips(np.array([0, 50]), f0, rms).tolist()
    assert kept == ([0] if slip else [0, 50])


def test_an_onset_with_an_attack_stays_at_any_interval():
    f0, rms = _decaying_note_with_a_slip(rise_db=6.0)
    assert N.without_slips(np.array([0, 50]), f0, rms).tolist() == [0, 50]


def test_the_shared_detector_drops_the_slips(monkeypatch):
    # note_onsets, which the harmonic and sampler methods both use, applies the rule
    f0, _ = _decaying_note_with_a_slip(rise_db=0.0)
    t = np.arange(100 * N.HOP) / SR
    audio = (0.3 * np.exp(-t / 0.4) * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    monkeypatch.setattr(N, "detected_onsets", lambda f, v, a: np.array([0, 50]))
    assert N.note_onsets(f0, np.ones(len(f0), bool), audio).tolist() == [0]


def test_a_slipped_track_reads_its_note_pitch():
    track = np.array([220.0, 221.0, 440.0, 660.0, 110.0, 233.0, np.nan])
    folded = N.without_track_slips(track, 220.0)
    np.testing.assert_array_equal(folded[:6], [220.0, 221.0, 220.0, 220.0, 220.0, 233.0])
    assert np.isnan(folded[6])  # unvoiced stays unvoiced; a semitone's glide (233 Hz) stays


def test_a_clip_shorter_than_the_fft_reads_without_librosas_warning():
    """A 0.1 s content (1600 samples, under the 4096-point FFT) warned "n_fft=4096 is too
    large" from librosa in every sampler/layered run (the clip is read as before)."""
    import warnings

    t = np.arange(1600) / SR
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f0, voiced = N.f0_track((0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32))
    assert len(f0) == len(voiced) == 1 + 1600 // N.HOP
    with pytest.warns(UserWarning, match="too large"):  # librosa itself does warn
        import librosa

        librosa.stft(np.zeros(1600, np.float32), n_fft=4096)
