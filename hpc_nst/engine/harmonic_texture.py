"""The style's texture for harmonic resynthesis: how each harmonic's level moves within a note.

:class:`hpc_nst.engine.harmonic.NoteTemplate` holds each harmonic's *median* level by time
since onset: the attack, decay and spectral evolution common to the style's notes, but smooth.
A bowed, blown or sung note is not smooth: its harmonics rise and fall by a few dB several times
a second (bow pressure, breath, the vibrato moving harmonics across the body's resonances), and
the EQ-proof judge hears exactly that, the modulation of each band within a note (README
"Quality": its modulation-power features are what the per-pair outputs miss).

The texture is that fluctuation as measured: per style note, from :data:`ATTACK_FRAMES` after
its onset to the end of its body (before its release; the template's own), each harmonic's
level (dB) less its moving mean over :data:`DETREND_FRAMES` (150 ms: the note's slower trend
is the template's), clipped to
+-:data:`CLIP_DB` and zero where the harmonic is more than :data:`RANGE_DB` under its own peak
(noise, not texture); the notes' residuals are laid end to end. Resynthesis adds it, at the
style's own rates (no pitch shift scales them), to each content note's harmonic levels from
:data:`ATTACK_FRAMES` on, cycling through it. A dB residual is unchanged by the style's gain
or any static filter.
"""

from __future__ import annotations

import numpy as np

TEXTURE_HARMONICS = 24  # harmonics 1..24 by number (as the template's own correction)
ATTACK_FRAMES = 6  # frames after an onset left to the template (the attack is its own)
DETREND_FRAMES = 15  # 150 ms moving mean: slower changes are the template's trend
RANGE_DB = 40.0  # a harmonic this far under its own (or the note's) peak: no texture
CLIP_DB = 12.0
MIN_FRAMES = 20  # a note must offer this many frames after its attack to be measured


def _moving_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Centred moving mean over ``n`` (odd) frames along axis 0, edges held."""
    half = n // 2
    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    csum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(padded, axis=0)])
    return (csum[n:] - csum[:-n]) / n


def level_texture(levels: np.ndarray, bodies: list[tuple[int, int]]) -> np.ndarray | None:
    """The texture ``(frames, TEXTURE_HARMONICS)`` in dB of a style's harmonic amplitudes
    ``levels`` ``(frames, harmonics)`` over its notes' bodies (onset frame, frame after the
    last one before the release), each ended early where the note's level falls RANGE_DB under
    its peak; None where no note is long enough (a percussive or very short style)."""
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
        residual = db - _moving_mean(db, DETREND_FRAMES)
        own_peak = db.max(axis=0)
        residual[:, own_peak < db.max() - RANGE_DB] = 0.0
        residual[db < own_peak - RANGE_DB] = 0.0
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
