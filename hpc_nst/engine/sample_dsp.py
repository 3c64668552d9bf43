"""Signal operations of the ``sampler`` method on single notes (1-D float arrays at 16 kHz):
pitch shift, sustain extension, level trend, slow pitch glides."""

from __future__ import annotations

import numpy as np

from hpc_nst.engine.note_analysis import HOP, SR, frame_rms

# 60 ms crossfades (the match spans several periods of a low note: 20 ms, one period at 50 Hz,
# aligned worse; dev LSD 10.21 -> 10.13, docs/quality.md "v1.4"), 200 ms pieces
EXTEND_OVERLAP, EXTEND_PIECE = 960, 3200
TREND_R2 = 0.6  # a level trend is kept only where a line explains this much of the level
GLIDE_S = 0.15  # pitch movement slower than this (seconds) is followed; vibrato is not


def shift(audio: np.ndarray, ratio: float) -> np.ndarray:
    """``audio`` with every frequency times ``ratio`` (and its length divided by it). Shifted
    down, the band that resampling empties (above ``ratio`` x Nyquist: breath, bow and hammer
    noise, the highest harmonics) is refilled with the original's, time-stretched to the new
    length at its own frequencies: an empty top octave is not the style's sound."""
    import soxr

    x = audio.astype(np.float64)
    if abs(ratio - 1.0) < 1e-4:
        return x
    y = soxr.resample(x, SR, SR / ratio)
    if ratio < 1.0 and len(x) > 4 * HOP:
        import librosa

        spec = librosa.stft(x.astype(np.float32), n_fft=512, hop_length=128)
        cut = int(np.ceil(ratio * (spec.shape[0] - 1)))
        spec[:cut] = 0.0
        high = librosa.istft(librosa.phase_vocoder(spec, rate=ratio, hop_length=128),
                             hop_length=128, length=len(y))
        y = y + high
    return y


def glide(y: np.ndarray, cents: np.ndarray, start: int) -> np.ndarray:
    """``y`` re-read from sample ``start`` on at a rate following ``cents`` (per frame, the
    deviation from the note's pitch): a slow pitch movement imposed on a fixed-pitch sample."""
    if not np.any(np.abs(cents) > 10):
        return y
    rate = np.interp(np.arange(len(y) - start) / HOP, np.arange(len(cents)), 2.0 ** (cents / 1200))
    pos = start + np.concatenate([[0.0], np.cumsum(rate[:-1])])
    pos = pos[pos <= len(y) - 1]
    return np.concatenate([y[:start], np.interp(pos, np.arange(len(y)), y)])


def slow_cents(contour: np.ndarray, f0: float) -> np.ndarray:
    cents = 1200 * np.log2(contour / f0)
    k = max(1, int(GLIDE_S * SR / HOP))
    if len(cents) <= k:
        return np.full(len(cents), float(np.median(cents)) if len(cents) else 0.0)
    pad = np.pad(cents, (k // 2, k - k // 2 - 1), mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def stretch(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` time-stretched (phase vocoder, pitch kept) to ``length`` samples."""
    import librosa

    out = librosa.effects.time_stretch(x.astype(np.float32), rate=len(x) / length, n_fft=512,
                                       hop_length=128)
    return np.pad(out, (0, max(length - len(out), 0)))[:length].astype(np.float64)


def trend_db_per_sample(x: np.ndarray) -> float:
    """The level's slope (dB per sample, <= 0) over ``x`` where a line explains it (R^2 >=
    TREND_R2; a tremolo's swing is no trend): a decaying note keeps decaying where it is
    extended, a sustained or trembling one stays level."""
    level = 20 * np.log10(np.maximum(frame_rms(x)[1:-1], 1e-9))
    if len(level) < 5:
        return 0.0
    k = np.arange(len(level))
    slope, icpt = np.polyfit(k, level, 1)
    resid = level - (slope * k + icpt)
    r2 = 1.0 - resid.var() / max(level.var(), 1e-12)
    return float(min(slope, 0.0)) / HOP if r2 >= TREND_R2 else 0.0


def extension_start(n: int) -> int:
    """Where :func:`extend` of an ``n``-sample ``x`` stops being ``x`` as recorded: its first
    crossfade into a piece (``n`` where it pads with silence instead)."""
    ov = min(EXTEND_OVERLAP, n // 4)
    return n if ov < 16 or min(EXTEND_PIECE, n // 2) <= ov else n - ov


def extend(x: np.ndarray, length: int, trend_db: float = 0.0) -> np.ndarray:
    """``x`` continued to ``length`` samples with pieces of its second half, each placed where
    it best continues the waveform (cross-correlation over the EXTEND_OVERLAP, crossfaded): the
    sustain keeps its own pitch, noise and modulation rates, which a phase vocoder smears.

    ``trend_db`` (dB per sample, :func:`trend_db_per_sample`): the level keeps that slope
    through the pieces. A piece taken from ``src`` and placed at ``at`` gets the gain
    ``trend_db * (at - src)``: without it a decaying note's pieces, taken from earlier (louder)
    in the sustain than where they are placed, swell back up at every seam (+2.4 to +5.7 dB per
    seam at 20-40 dB/s, a 5 Hz sawtooth on an extended plucked note)."""
    if len(x) >= length:
        return x[:length].astype(np.float64)
    x = x.astype(np.float64)
    ov = min(EXTEND_OVERLAP, len(x) // 4)
    piece = min(EXTEND_PIECE, len(x) // 2)
    if ov < 16 or piece <= ov:
        return np.pad(x, (0, length - len(x)))
    out = [x]
    have = len(x)
    last = x[-ov:]
    lo, hi = len(x) // 2, len(x) - piece - ov
    xf = np.sin(np.linspace(0.0, np.pi / 2, ov)) ** 2
    while have < length:
        if hi > lo:
            windows = np.lib.stride_tricks.sliding_window_view(x[lo: hi + ov], ov)
            score = windows @ last / (np.linalg.norm(windows, axis=1) * np.linalg.norm(last)
                                      + 1e-12)
            src = lo + int(np.argmax(score))
        else:
            src = max(len(x) - piece - ov, 0)
        chunk = x[src: src + piece + ov].copy()
        if trend_db:
            chunk *= 10.0 ** (trend_db * (have - ov - src) / 20.0)
        out[-1] = out[-1].copy()
        out[-1][-ov:] = out[-1][-ov:] * (1.0 - xf) + chunk[:ov] * xf
        out.append(chunk[ov:])
        have += len(chunk) - ov
        last = chunk[-ov:]
    return np.concatenate(out)[:length]
