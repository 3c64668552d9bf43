"""Note-synchronous envelopes: the style instrument's attack and decay at the content's onsets.

A static EQ gives the content the style's average spectrum; what it cannot give is how the
style's notes *move*: a harp's fast attack and long decay, a bowed string's slow swell. This
module measures that movement and applies it:

1. :func:`band_levels`: the magnitude STFT pooled into ``bands`` mel bands, in dB.
2. :func:`detect_onsets`: note onsets from the positive band flux (librosa's peak picking).
3. :func:`note_template`: per band, each note's level relative to its own peak in that band,
   as a function of the time since its onset; the median over the style's notes is the style's
   typical note envelope (beyond the longest style note, the last 100 ms slope continues).
4. :func:`reenvelope_gains`: for every content note the per-band dB gain that turns its own
   relative envelope into the style's, interpolated back to STFT bins (smooth in frequency, so
   the harmonics - the notes - stay where they are). Bands where the content is silent are
   never raised.

Used by the ``notes`` method (:mod:`hpc_nst.engine.methods.notes`).
"""

from __future__ import annotations

import warnings

import numpy as np

BANDS = 24
FLOOR_DB = 60.0  # a band is silent below its maximum minus this
MAX_CUT_DB = 40.0
MAX_BOOST_DB = 20.0
MIN_GAP_S = 0.06
EQ_BANDS = 8


def mel_weights(n_bins: int, sample_rate: int, bands: int = BANDS) -> np.ndarray:
    """Triangular mel filters ``(bands, n_bins)`` of an ``n_bins``-bin magnitude STFT."""
    import librosa

    n_fft = 2 * (n_bins - 1)
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=bands, fmin=0.0,
                               fmax=sample_rate / 2, norm=None).astype(np.float64)


def band_levels(magnitude: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Band levels in dB ``(bands, frames)`` of a magnitude STFT ``(bins, frames)``."""
    power = weights @ (np.asarray(magnitude, dtype=np.float64) ** 2)
    db = 10.0 * np.log10(np.maximum(power, 1e-12))
    return np.maximum(db, db.max() - 100.0)


def detect_onsets(levels: np.ndarray, frame_rate: float) -> np.ndarray:
    """Onset frames of ``levels`` (``(bands, frames)`` dB), always starting with the first note."""
    import librosa

    floored = np.maximum(levels, levels.max(axis=1, keepdims=True) - FLOOR_DB)
    flux = np.maximum(np.diff(floored, axis=1), 0.0).sum(axis=0)
    flux = np.concatenate([[0.0], flux])
    if flux.max() <= 0:
        return np.zeros(1, dtype=int)
    wait = max(1, int(MIN_GAP_S * frame_rate))
    peaks = librosa.util.peak_pick(flux, pre_max=3, post_max=3, pre_avg=10, post_avg=10,
                                   delta=0.1 * float(flux.max()), wait=wait)
    loud = levels.max(axis=0) > levels.max() - 40.0
    first = int(np.argmax(loud)) if loud.any() else 0
    end = len(flux) - wait  # the last frames see the signal's edge, not a note
    peaks = np.asarray([p for p in peaks if first + wait // 2 < p < end], dtype=int)
    return np.concatenate([[first], peaks]).astype(int)


def _segments(onsets: np.ndarray, frames: int) -> list[tuple[int, int]]:
    ends = np.append(onsets[1:], frames)
    return [(int(a), int(b)) for a, b in zip(onsets, ends) if b > a]


def note_template(levels: np.ndarray, onsets: np.ndarray, length: int) -> np.ndarray:
    """The median note envelope ``(bands, length)`` in dB relative to each note's band peak."""
    bands, frames = levels.shape
    stack = np.full((max(len(onsets), 1), bands, length), np.nan)
    for k, (a, b) in enumerate(_segments(onsets, frames)):
        seg = levels[:, a:min(b, a + length)]
        stack[k, :, :seg.shape[1]] = seg - seg.max(axis=1, keepdims=True)
    with warnings.catch_warnings():  # an all-NaN column (no note that long) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        template = np.nanmedian(stack, axis=0)
    covered = np.where(~np.isnan(template[0]))[0]
    last = int(covered[-1]) if covered.size else -1
    if last < 0:
        return np.zeros((bands, length))
    if last < length - 1:  # continue the last 100 ms slope (a decay keeps decaying)
        k = min(10, last)
        slope = (template[:, last] - template[:, last - k]) / k if k > 0 else np.zeros(bands)
        slope = np.minimum(slope, 0.0)
        steps = np.arange(1, length - last)
        template[:, last + 1:] = template[:, last:last + 1] + slope[:, None] * steps
    return np.maximum(template, -FLOOR_DB)


def reenvelope_gains(content_mag: np.ndarray, style_mag: np.ndarray, sample_rate: int,
                     hop_length: int, bands: int = BANDS) -> np.ndarray:
    """Per-bin, per-frame dB gains ``(bins, frames)`` giving the content the style's envelopes."""
    n_bins, frames = content_mag.shape
    weights = mel_weights(n_bins, sample_rate, bands)
    rate = sample_rate / hop_length
    c_lev, s_lev = band_levels(content_mag, weights), band_levels(style_mag, weights)
    c_on, s_on = detect_onsets(c_lev, rate), detect_onsets(s_lev, rate)
    segs = _segments(c_on, frames)
    longest = max(b - a for a, b in segs)
    template = note_template(s_lev, s_on, longest)
    delta = np.zeros((bands, frames))
    active = c_lev > c_lev.max(axis=1, keepdims=True) - FLOOR_DB
    for a, b in segs:
        seg = c_lev[:, a:b]
        d = template[:, :b - a] - (seg - seg.max(axis=1, keepdims=True))
        delta[:, a:b] = np.clip(d, -MAX_CUT_DB, MAX_BOOST_DB)
    delta = np.where(active, delta, np.minimum(delta, 0.0))
    share = weights / np.maximum(weights.sum(axis=0, keepdims=True), 1e-12)
    return share.T @ delta


def envelope_eq_gains(magnitude: np.ndarray, style_mag: np.ndarray, sample_rate: int,
                      bands: int = EQ_BANDS) -> np.ndarray:
    """Per-bin linear gains giving ``magnitude`` the style's time-averaged *spectral envelope*.

    The ratio is taken per mel band (``bands`` of them) and interpolated to bins, so it is
    smooth in frequency: unlike a per-bin ratio, it does not imprint the style's own notes on
    the content (nor remove the content's fundamentals where the style had no partials).
    """
    weights = mel_weights(magnitude.shape[0], sample_rate, bands)
    m = weights @ (np.asarray(magnitude, dtype=np.float64) ** 2).mean(axis=1)
    s = weights @ (np.asarray(style_mag, dtype=np.float64) ** 2).mean(axis=1)
    floor = 10 ** (-FLOOR_DB / 10) * max(float(m.max()), float(s.max()), 1e-24)
    ratio_db = 10 * np.log10(np.maximum(s, floor) / np.maximum(m, floor))
    ratio_db = np.clip(ratio_db, -MAX_CUT_DB, MAX_BOOST_DB)
    share = weights / np.maximum(weights.sum(axis=0, keepdims=True), 1e-12)
    return 10.0 ** ((share.T @ ratio_db) / 20.0)
