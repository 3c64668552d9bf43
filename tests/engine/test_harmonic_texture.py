"""The style's texture in ``harmonic``: each harmonic's within-note level fluctuation."""

from __future__ import annotations

import numpy as np
import pytest

from hpc_nst.config import load_job
from hpc_nst.engine import harmonic as H
from hpc_nst.engine import harmonic_texture as T
from hpc_nst.engine.methods import run_method
from tests.engine.tones import SR, notes

TREMOLO_HZ, TREMOLO_DB = 6.0, 3.0


def with_tremolo(audio: np.ndarray, hz: float = TREMOLO_HZ, db: float = TREMOLO_DB) -> np.ndarray:
    t = np.arange(len(audio)) / SR
    return (audio * 10.0 ** (db * np.sin(2 * np.pi * hz * t) / 20.0)).astype(np.float32)


def peak_rate(x: np.ndarray, frame_s: float) -> float:
    spec = np.abs(np.fft.rfft((x - x.mean()) * np.hanning(len(x)), n=4096))
    return float(np.fft.rfftfreq(4096, d=frame_s)[np.argmax(spec)])


@pytest.fixture(scope="module")
def steady():
    return notes([220.0, 330.0], 1.0)


def test_a_steady_style_has_almost_no_texture(steady):
    texture = H.NoteTemplate.from_audio(steady).texture
    assert texture is not None and texture.shape[1] == T.TEXTURE_HARMONICS
    assert np.median(np.abs(texture)) < 0.05 and texture.std() < 0.5  # the notes' ends only


@pytest.mark.parametrize("decay_s", [0.1, 0.15])
def test_a_decaying_style_has_no_texture(decay_s):
    """A pluck's steady fall is the template's: no sawtooth at the notes' ends (a moving mean
    held at the ends read +0.6-0.9 dB at every note's start)."""
    texture = H.NoteTemplate.from_audio(notes([220.0, 330.0], 1.0, decay_s=decay_s)).texture
    assert texture is not None and np.abs(texture[:5]).max() < 0.1 and texture.std() < 0.1


def test_masked_frames_leave_their_neighbours_alone():
    """A harmonic that vanishes for a few frames (past TOP_HZ with a vibrato, say) is no
    texture before or after the gap."""
    levels = np.tile(1.0 / np.arange(1, 31), (60, 1))
    levels[:, 2] *= 10.0 ** (-0.5 * np.arange(60) / 20.0)  # one harmonic decaying 0.5 dB/frame
    levels[30:32, 1] = 0.0
    levels[40:41, 2] = 0.0
    texture = T.level_texture(levels, [(0, 60)])
    assert texture is not None and np.abs(texture).max() < 0.01, np.abs(texture).max(axis=0)


def test_a_tremolo_is_measured_at_its_rate_and_depth_whatever_the_gain(steady):
    style = with_tremolo(steady)
    texture = H.NoteTemplate.from_audio(style).texture
    for h in (0, 1, 4):  # each harmonic moves with the note
        assert 1.2 < texture[:, h].std() < 2.5, (h, texture[:, h].std())  # +-3 dB: 2.1 dB rms
        assert abs(peak_rate(texture[:, h], 0.01) - TREMOLO_HZ) < 0.5
    quiet = H.NoteTemplate.from_audio(0.05 * style).texture  # a dB residual: gain-invariant
    np.testing.assert_allclose(quiet, texture, atol=1e-3)


def test_no_texture_from_notes_too_short_to_measure():
    short = notes([220.0, 330.0, 440.0], 0.15)  # 150 ms: shorter than attack + MIN_FRAMES
    assert H.NoteTemplate.from_audio(short).texture is None
    levels = np.ones((50, 30))
    assert T.level_texture(levels, [(0, 10)]) is None
    db = np.zeros(40)
    np.testing.assert_array_equal(T.add_texture(db, None, 20), db)


def test_the_texture_is_added_after_the_attack_cycling_and_above_its_harmonics():
    texture = np.zeros((30, T.TEXTURE_HARMONICS))
    texture[:, 0] = np.arange(30)
    half = T.TEXTURE_HARMONICS // 2
    texture[:, half: half + half // 2] = 4.0  # the upper half's mean: 2 dB
    db = np.zeros(40)
    np.testing.assert_array_equal(T.add_texture(db, texture, T.ATTACK_FRAMES - 1), db)
    at = T.add_texture(db, texture, T.ATTACK_FRAMES + 33)  # cycles: row 3
    assert at[0] == 3.0 and at[1] == 0.0 and at[half] == 4.0 and at[T.TEXTURE_HARMONICS - 1] == 0
    assert np.all(at[T.TEXTURE_HARMONICS:] == 2.0)  # the mean of the upper half
    assert not np.any(db)  # the template's levels are not changed in place


def test_the_output_takes_the_styles_tremolo_not_the_contents_steadiness(steady):
    cfg = load_job(overrides={"method": "harmonic"})
    content = notes([262.0], 1.6, gap_s=0.2)

    def level_wobble(style: np.ndarray) -> tuple[float, float]:
        out = run_method([content], [style], cfg, seeds=[0])[0].audio
        frames = out[int(0.3 * SR): int(1.4 * SR)].reshape(-1, 160)
        db = 10 * np.log10((frames ** 2).mean(axis=1) + 1e-12)
        trend = np.convolve(np.pad(db, 7, mode="edge"), np.ones(15) / 15, mode="valid")
        return float((db - trend).std()), peak_rate(db - trend, 0.01)

    flat, _ = level_wobble(steady)
    wobble, rate = level_wobble(with_tremolo(steady))
    assert wobble > 1.0 and wobble > 2.5 * flat, (flat, wobble)
    assert abs(rate - TREMOLO_HZ) < 0.7
