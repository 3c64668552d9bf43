"""The ``harmonic`` method: pitch from the content, harmonics and their evolution from the style."""

from __future__ import annotations

import numpy as np
import pytest

from hpc_nst.config import load_job
from hpc_nst.engine import harmonic as H
from hpc_nst.engine import note_analysis as N
from hpc_nst.engine.methods import run_method
from hpc_nst.engine.transfer import at_peak_of
from tests.engine.tones import SR, level_db, notes


@pytest.fixture(scope="module")
def cfg():
    return load_job(overrides={"method": "harmonic"})


def transfer(content: np.ndarray, style: np.ndarray, cfg, seed: int = 0) -> np.ndarray:
    return run_method([content], [style], cfg, seeds=[seed])[0].audio


def test_f0_of_a_high_pure_tone_and_of_a_rich_low_one():
    high = notes([1500.0], 0.6, harmonics=[1.0])  # a harp's top notes: nearly a sine
    rich = notes([220.0], 0.6)
    for audio, f in ((high, 1500.0), (rich, 220.0)):
        f0, voiced = H.f0_track(audio)
        cents = 1200 * np.abs(np.log2(f0[voiced] / f))
        assert voiced.sum() > 40 and np.median(cents) < 20, (f, np.nanmedian(f0))


def test_the_content_keeps_its_notes(cfg):
    content = notes([262.0, 330.0, 392.0, 523.0])
    out = transfer(content, notes([200.0, 300.0], 0.8, decay_s=0.3), cfg)
    assert len(out) == len(content)
    for i, f in enumerate([262.0, 330.0, 392.0, 523.0]):
        a = i * 0.6 + 0.1
        f0, voiced = H.f0_track(out[int(a * SR):int((a + 0.3) * SR)])
        assert np.median(1200 * np.abs(np.log2(f0[voiced] / f))) < 30, (f, np.nanmedian(f0))


def test_gain_invariance_and_determinism(cfg):
    content = notes([262.0, 330.0])
    style = notes([220.0, 440.0], 0.7, decay_s=0.3)
    out = transfer(content, style, cfg)
    # the style's level does not matter (its template is relative to each note's peak)
    np.testing.assert_allclose(transfer(content, 0.1 * style, cfg), out, atol=1e-4)
    # the output takes the content's peak level
    assert abs(np.abs(out).max() - np.abs(content).max()) < 1e-3
    np.testing.assert_array_equal(transfer(content, style, cfg), out)  # same seed, same bits
    assert not np.array_equal(transfer(content, style, cfg, seed=1), out)  # the noise's seed


def test_silent_content_gives_silence(cfg):
    out = transfer(np.zeros(SR, np.float32), notes([220.0]), cfg)
    assert not np.any(out)


def test_a_slip_in_the_style_leaves_its_note_template_as_without_it(monkeypatch):
    # a decaying 220 Hz note: where its track reads the second harmonic (and the energy
    # detector fires), the template must still measure the harmonics of 220 Hz
    style = notes([220.0], seconds=1.0, decay_s=0.4, gap_s=0.0)
    f0_true, voiced = H.f0_track(style)
    monkeypatch.setattr(N, "detected_onsets", lambda f, v, a: np.array([int(np.argmax(v))]))
    clean = H.NoteTemplate.from_audio(style)
    slipped = f0_true.copy()
    slipped[60:90] = 440.0
    monkeypatch.setattr(H, "f0_track", lambda a: (slipped.copy(), voiced.copy()))
    monkeypatch.setattr(N, "detected_onsets",
                        lambda f, v, a: np.array([int(np.argmax(v)), 60]))
    template = H.NoteTemplate.from_audio(style)
    np.testing.assert_allclose(template.envelope, clean.envelope, atol=1e-6)
    np.testing.assert_allclose(template.by_index, clean.by_index, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("decay_s", [0.03, 0.05])
def test_a_fast_pluck_keeps_decaying_on_long_notes(cfg, decay_s):
    # its decay (over 6 dB per 50 ms all along) is no voiced release: the template keeps it
    content = notes([330.0, 262.0], seconds=1.0)
    out = transfer(content, notes([220.0, 294.0, 247.0], 0.6, decay_s=decay_s), cfg)
    assert level_db(out, 0.02, 0.07) - level_db(out, 0.5, 0.55) > 25


def test_a_style_is_analysed_once_for_many_contents(cfg):
    from hpc_nst.engine.methods.harmonic import style_template

    style = notes([220.0, 330.0], 0.5)
    assert style_template(style) is style_template(style.copy())  # same audio: one analysis
    assert style_template(style) is not style_template(0.5 * style)
    content = notes([262.0, 392.0])
    fresh = H.resynthesise(content, H.NoteTemplate.from_audio(style), 0)
    first = run_method([content], [style], cfg, seeds=[0])[0].audio
    again = run_method([content], [style], cfg, seeds=[0])[0].audio  # the cached template
    np.testing.assert_array_equal(again, first)  # playing never changed it
    np.testing.assert_allclose(first, at_peak_of(fresh, content))


def test_the_sampler_and_the_harmonic_analyses_share_one_cache_without_mixing():
    from hpc_nst.engine.methods.harmonic import style_template
    from hpc_nst.engine.methods.sampler import style_bank

    style = notes([220.0, 330.0], 0.5)
    assert isinstance(style_template(style), H.NoteTemplate)
    assert not isinstance(style_bank(style), H.NoteTemplate)
