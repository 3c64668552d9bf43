"""Note-synchronous envelopes: the style's decay lands on the content's notes, pitches stay."""

from __future__ import annotations

import numpy as np

from hpc_nst.engine.methods.notes import note_transfer
from hpc_nst.engine.note_envelope import band_levels, detect_onsets, mel_weights
from tests.conftest import SR, harmonic_tone

NOTE_S = 0.4
PITCHES = (220.0, 262.0, 330.0, 294.0)


def _melody(decay: float, pitches=PITCHES) -> np.ndarray:
    return np.concatenate([harmonic_tone(f, NOTE_S, decay=decay) for f in pitches])


def _levels_db(audio: np.ndarray, start: float, seconds: float = 0.05) -> float:
    a = audio[int(start * SR):int((start + seconds) * SR)].astype(np.float64)
    return 10 * np.log10(np.mean(a ** 2) + 1e-20)


def _dominant_hz(audio: np.ndarray, start: float) -> float:
    a = audio[int(start * SR):int((start + 0.1) * SR)] * np.hanning(int(0.1 * SR))
    spec = np.abs(np.fft.rfft(a, 8 * len(a)))
    return float(np.argmax(spec) * SR / (8 * len(a)))


def test_onsets_of_a_melody(tiny_job):
    import torch

    from hpc_nst.audio.spectrogram import complex_stft

    mag = complex_stft(torch.from_numpy(_melody(decay=3.0)), tiny_job.stft).abs().double().numpy()
    levels = band_levels(mag, mel_weights(mag.shape[0], SR))
    onsets = detect_onsets(levels, SR / tiny_job.stft.hop_length)
    assert np.allclose(onsets * 0.01, [0.0, 0.4, 0.8, 1.2], atol=0.03)


def test_the_style_decay_lands_on_the_content_notes(tiny_job):
    content = _melody(decay=0.3)  # sustained
    style = _melody(decay=12.0, pitches=(440.0, 392.0, 523.0, 494.0))  # plucked, other notes
    out = note_transfer(content, style, tiny_job)
    assert out.shape == content.shape and np.isfinite(out).all()
    for k in range(len(PITCHES)):
        t0 = k * NOTE_S
        drop_out = _levels_db(out, t0 + 0.02) - _levels_db(out, t0 + 0.3)
        drop_content = _levels_db(content, t0 + 0.02) - _levels_db(content, t0 + 0.3)
        assert drop_out > drop_content + 15.0, (k, drop_out, drop_content)  # decays like the style
        ratio = _dominant_hz(out, t0 + 0.02) / PITCHES[k]  # a partial of the content's note
        assert abs(ratio - round(ratio)) < 0.05 and round(ratio) >= 1, (k, ratio)


def test_identical_inputs_change_only_the_level(tiny_job):
    x = _melody(decay=3.0)
    out = note_transfer(x, x, tiny_job)
    corr = np.corrcoef(out, x)[0, 1]
    assert corr > 0.99


def test_envelope_eq_keeps_the_dynamics_and_takes_the_tilt(tiny_job):
    from hpc_nst.engine.methods.notes import envelope_eq
    from hpc_nst.metrics.spectral import spectral_shape

    content = _melody(decay=3.0)
    bright = np.diff(_melody(decay=3.0, pitches=(440.0, 392.0, 523.0, 494.0)), append=0.0)
    out = envelope_eq(content, bright.astype(np.float32), tiny_job)
    assert spectral_shape(out, SR)[0] > 1.3 * spectral_shape(content, SR)[0]  # brighter
    for k in range(len(PITCHES)):  # the content's own decay, untouched
        t0 = k * NOTE_S
        drop = [_levels_db(a, t0 + 0.02) - _levels_db(a, t0 + 0.3) for a in (out, content)]
        assert abs(drop[0] - drop[1]) < 2.0
