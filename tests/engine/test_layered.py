"""``layered``: the sampled and the modelled renderings' log magnitudes averaged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpc_nst.config import load_job
from hpc_nst.engine.harmonic import NoteTemplate, resynthesise
from hpc_nst.engine.methods import run_method
from hpc_nst.engine.methods.layered import layer
from hpc_nst.engine.methods.sampler import style_bank
from hpc_nst.engine.sampler import play, play_with_extensions
from hpc_nst.engine.transfer import at_peak_of
from hpc_nst.errors import TransferError
from tests.engine.test_sampler import median_f0
from tests.engine.tones import SR, level_db, notes


@pytest.fixture(scope="module")
def cfg():
    return load_job(Path(__file__).resolve().parents[2] / "jobs" / "layered.toml")


def _noise(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * SR))).astype(
        np.float32)


def test_a_rendering_layered_with_itself_or_with_silence_is_itself():
    x = notes([262.0, 330.0])
    for other in (x, 7.0 * x, np.zeros_like(x), np.full_like(x, 1e-40)):  # level never matters
        np.testing.assert_allclose(layer(x, other), x, atol=2e-4)
    np.testing.assert_allclose(layer(x, _noise(1.2, 0), weight=1.0), x, atol=2e-4)


def test_the_weights_average_log_magnitudes():
    """Two steady tones at one level: the layer's spectrum at each tone's frequency is the
    weighted mean, in dB, of the two renderings' (a tone absent from one is lowered by
    (1 - weight) times its distance to the other's floor)."""
    t = np.arange(SR) / SR
    a = (0.3 * np.sin(2 * np.pi * 500 * t) + 0.03 * np.sin(2 * np.pi * 1500 * t)).astype(
        np.float32)
    b = (0.3 * np.sin(2 * np.pi * 500 * t) + 0.3 * np.sin(2 * np.pi * 1500 * t)).astype(
        np.float32)
    b *= np.float32(np.sqrt(np.mean(a ** 2) / np.mean(b ** 2)))  # as layer() levels them

    def db_at(x: np.ndarray, f: float) -> float:
        spec = np.abs(np.fft.rfft(x[4000:12000] * np.hanning(8000)))
        k = int(round(f * 8000 / SR))
        return 20 * np.log10(spec[k - 2:k + 3].max())

    out = layer(a, b, weight=0.8)
    for f in (500.0, 1500.0):
        want = 0.8 * db_at(a, f) + 0.2 * db_at(b, f)
        assert abs(db_at(out, f) - want) < 0.5, (f, db_at(out, f), want)
    # where the sampler extended a note, the extended weight; elsewhere the weight
    out = layer(a, b, weight=0.8, extended=[(0, SR)], extended_weight=0.5)
    assert abs(db_at(out, 1500.0) - (0.5 * db_at(a, 1500.0) + 0.5 * db_at(b, 1500.0))) < 0.5
    half = layer(a, b, weight=0.8, extended=[(SR // 2, SR)], extended_weight=0.3)

    def tilt(x: np.ndarray) -> float:  # dB of 1500 Hz re. 500 Hz
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        k1, k3 = (int(round(f * len(x) / SR)) for f in (500.0, 1500.0))
        return 20 * np.log10(spec[k3 - 2:k3 + 3].max() / spec[k1 - 2:k1 + 3].max())

    for seg, w in ((slice(2000, 6000), 0.8), (slice(10000, 14000), 0.3)):
        want = w * tilt(a[seg]) + (1 - w) * tilt(b[seg])
        assert abs(tilt(half[seg]) - want) < 0.5, (w, tilt(half[seg]), want)


def test_energy_stays_only_where_both_renderings_have_it():
    x = notes([262.0, 330.0], gap_s=0.3)
    gapped = x.copy()
    gapped[int(0.1 * SR):int(0.4 * SR)] = 0.0  # the modelled rendering silent there
    out = layer(x, gapped, weight=0.8)
    assert level_db(x, 0.15, 0.35) - level_db(out, 0.15, 0.35) > 40
    assert abs(level_db(out, 0.7, 1.0) - level_db(x, 0.7, 1.0)) < 3


def test_bad_weights_are_refused():
    with pytest.raises(ValueError, match="within"):
        layer(np.zeros(1000, np.float32), np.zeros(1000, np.float32), weight=1.5)
    with pytest.raises(ValueError, match="within"):
        layer(np.zeros(1000, np.float32), np.zeros(1000, np.float32), extended_weight=-0.1)


def test_the_sampler_says_where_it_continued_a_note_with_pieces_of_itself():
    short_style = notes([220.0, 300.0, 440.0], 0.25)  # sustained, 0.25 s
    long_content = notes([262.0, 330.0], 0.9, gap_s=0.2)
    audio, spans = play_with_extensions(long_content, style_bank(short_style))
    np.testing.assert_array_equal(audio, play(long_content, style_bank(short_style)))
    assert len(spans) == 2
    for (first, end), onset in zip(spans, (0.0, 1.1)):
        assert onset * SR + 0.1 * SR < first < end <= onset * SR + 1.05 * SR, (first, end)
    short_content = notes([262.0, 330.0], 0.2, gap_s=0.2)
    assert play_with_extensions(short_content, style_bank(notes([220.0, 440.0], 1.0)))[1] == []


def test_the_method_plays_the_content_notes_at_its_peak_and_repeats_its_bits(cfg):
    content = notes([262.0, 330.0, 392.0])
    style = notes([220.0, 300.0, 440.0], 0.5, decay_s=0.3)
    out = run_method([content], [style], cfg, seeds=[0])[0].audio
    assert len(out) == len(content)
    assert abs(np.abs(out).max() - np.abs(content).max()) < 1e-3
    for i, f in enumerate([262.0, 330.0, 392.0]):
        a = i * 0.6 + 0.1
        got = median_f0(out[int(a * SR):int((a + 0.3) * SR)])
        assert abs(1200 * np.log2(got / f)) < 30, (f, got)
    np.testing.assert_array_equal(run_method([content], [style], cfg, seeds=[0])[0].audio, out)
    # the layer of the two methods' renderings, the extended notes weighted as such
    sampled, extended = play_with_extensions(content, style_bank(style))
    assert extended  # the 0.35 s sustain of the style's notes, extended to 0.5 s
    modelled = resynthesise(content, NoteTemplate.from_audio(style), 0)
    np.testing.assert_allclose(out, at_peak_of(layer(sampled, modelled, extended=extended),
                                               content), atol=1e-6)
    assert np.abs(out - at_peak_of(layer(sampled, modelled), content)).max() > 1e-3
    assert np.abs(out - at_peak_of(sampled, content)).max() > 0.01  # not the sampler's alone
    with pytest.raises(TransferError, match="no pitched note"):
        run_method([content], [np.zeros(SR, np.float32)], cfg, seeds=[0])


def test_layered_post_filters_the_layered_rendering_keeping_notes_and_bits(cfg):
    """``layered-post``: layered's output through the shipped post-filter: the content's
    notes kept, its peak, its bits on a rerun; it differs from layered's by band gains only."""
    from hpc_nst.models.post_filter import load_post_filter, post_filter

    post_cfg = load_job(Path(__file__).resolve().parents[2] / "jobs" / "layered-post.toml")
    content = notes([262.0, 330.0, 392.0])
    style = notes([220.0, 300.0, 440.0], 0.5, decay_s=0.3)
    out = run_method([content], [style], post_cfg, seeds=[0])[0].audio
    layered = run_method([content], [style], cfg, seeds=[0])[0].audio
    assert len(out) == len(content) and abs(np.abs(out).max() - np.abs(content).max()) < 1e-3
    for i, f in enumerate([262.0, 330.0, 392.0]):
        a = i * 0.6 + 0.1
        got = median_f0(out[int(a * SR):int((a + 0.3) * SR)])
        assert abs(1200 * np.log2(got / f)) < 30, (f, got)
    np.testing.assert_allclose(out, at_peak_of(post_filter(layered, style, load_post_filter()),
                                               content), atol=1e-6)
    assert np.abs(out - layered).max() > 1e-3
    np.testing.assert_array_equal(run_method([content], [style], post_cfg, seeds=[0])[0].audio,
                                  out)
