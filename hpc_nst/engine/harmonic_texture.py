"""The style's texture for harmonic resynthesis: how each harmonic's level moves within a note.

:class:`hpc_nst.engine.harmonic.NoteTemplate` holds each harmonic's *median* level by time
since onset: the attack, decay and spectral evolution common to the style's notes, but smooth.
A bowed, blown or sung note is not smooth: its harmonics rise and fall by a few dB several times
a second (bow pressure, breath, the vibrato moving harmonics across the body's resonances), and
the EQ-proof judge hears exactly that, the modulation of each band within a note (docs/quality.md,
"harmonic v3.2": its modulation-power features are what the per-pair outputs miss).

The texture is that fluctuation as measured: per style note, from :data:`ATTACK_FRAMES` after
its onset to the end of its body (before its release; the template's own), each harmonic's
level (dB) less its local trend over :data:`DETREND_FRAMES` (150 ms, a moving mean, or a line
fitted where the window is cut by the note's ends or masked frames: the note's slower course
is the template's), clipped to +-:data:`CLIP_DB` and zero where the harmonic is more than
:data:`RANGE_DB` under its own peak (noise, not texture); the notes' residuals are laid end
to end. Resynthesis adds it, at the style's own rates (no pitch shift scales them), to each
content note's harmonic levels from :data:`ATTACK_FRAMES` on, cycling through it (harmonics
above TEXTURE_HARMONICS, whose bands hold several harmonics each, the mean of the upper
half); the note's release starts from its level without it. A dB residual is unchanged by
the style's gain or any static filter.
"""

from __future__ import annotations

import numpy as np

TEXTURE_HARMONICS = 24  # harmonics 1..24 by number (as the template's own correction)
ATTACK_FRAMES = 6  # frames after an onset left to the template (the attack is its own)
DETREND_FRAMES = 15  # 150 ms moving mean: slower changes are the template's trend
RANGE_DB = 40.0  # a harmonic this far under its own peak (or the loudest one's): no texture
CLIP_DB = 12.0
MIN_FRAMES = 20  # a note must offer this many frames after its attack to be measured


def _local_trend(db: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """Per frame and column of ``db``, the least-squares line through the ``valid`` frames of
    the ``n`` frames centred on it (fewer at the ends), evaluated there: the moving mean where
    the window is whole and symmetric, and no bias at a note's ends or across masked frames
    where the level is sloping (a decaying note's edges would otherwise read as texture)."""
    half = n // 2
    w = valid.astype(np.float64)
    x = np.arange(len(db), dtype=np.float64)[:, None] * np.ones((1, db.shape[1]))
    y = np.where(valid, db, 0.0)

    def window_sum(v: np.ndarray) -> np.ndarray:
        c = np.concatenate([np.zeros((1, v.shape[1])), np.cumsum(v, axis=0)])
        hi = np.minimum(np.arange(len(v)) + half + 1, len(v))
        lo = np.maximum(np.arange(len(v)) - half, 0)
        return c[hi] - c[lo]

    s0, sx, sy = window_sum(w), window_sum(w * x), window_sum(w * y)
    sxx, sxy = window_sum(w * x * x), window_sum(w * x * y)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = sx / s0, sy / s0
        var = sxx / s0 - mx * mx
        slope = np.where(var > 1e-9, (sxy / s0 - mx * my) / var, 0.0)
        trend = my + slope * (x - mx)
    return np.where(s0 > 0, trend, 0.0)


def level_texture(levels: np.ndarray, bodies: list[tuple[int, int]]) -> np.ndarray | None:
    """The texture ``(frames, TEXTURE_HARMONICS)`` in dB of a style's harmonic amplitudes
    ``levels`` ``(frames, harmonics)`` over its notes' bodies (onset frame, frame after the
    last one before the release), each cut after its last frame within RANGE_DB of its peak;
    None where no note is long enough (a percussive or very short style). Frames where a
    harmonic is RANGE_DB under its own peak (or its peak RANGE_DB under the loudest
    harmonic's) are noise, not texture: zero, and left out of the trend."""
    pieces = []
    k = min(TEXTURE_HARMONICS, levels.shape[1])
    for onset, body_end in bodies:
        start = onset + ATTACK_FRAMES
        db = 20.0 * np.log10(np.maximum(levels[start:body_end, :k], 1e-9))
        if len(db) == 0:
            continue
        total = 10.0 * np.log10(np.maximum((levels[start:body_end] ** 2).sum(axis=1), 1e-18))
        audible = np.flatnonzero(total >= total.max() - RANGE_DB)
        db = db[: audible[-1] + 1]
        if len(db) < MIN_FRAMES:
            continue
        own_peak = db.max(axis=0)
        valid = (db >= own_peak - RANGE_DB) & (own_peak >= db.max() - RANGE_DB)
        residual = np.where(valid, db - _local_trend(db, valid, DETREND_FRAMES), 0.0)
        piece = np.zeros((len(db), TEXTURE_HARMONICS))
        piece[:, :k] = np.clip(residual, -CLIP_DB, CLIP_DB)
        pieces.append(piece)
    return np.concatenate(pieces) if pieces else None


def add_texture(db: np.ndarray, texture: np.ndarray | None, tau: int) -> np.ndarray:
    """Harmonic levels ``db`` (harmonics 1..H, dB) of a frame ``tau`` frames after a note's
    onset with the texture added: harmonics 1..TEXTURE_HARMONICS their own, the higher ones the
    mean of the upper half of those (their bands hold several harmonics each)."""
    if texture is None or tau < ATTACK_FRAMES:
        return db
    row = texture[(tau - ATTACK_FRAMES) % len(texture)]
    out = db.copy()
    k = min(TEXTURE_HARMONICS, len(out))
    out[:k] += row[:k]
    out[k:] += row[TEXTURE_HARMONICS // 2:].mean()
    return out
