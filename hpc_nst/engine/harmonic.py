"""Harmonic analysis and resynthesis: the content's notes played with the style's harmonics.

For monophonic material. The style is analysed into a *note template*, each part the median
over the style's notes: the level of each harmonic in dB relative to its note's peak, by
time since the note's onset (harmonics 1-24 by their number, higher ones by frequency on a
log grid, with a per-number correction where a number has too few points); the release after
the note's body ends (its voicing, or the start of a release that is still voiced); the
level between the harmonics (noise); the vibrato's depth and rate. The content gives what to
play: its f0 track (harmonic summation), its notes (onsets at voicing starts, pitch jumps
and energy re-attacks; a detection that brings no attack at the previous note's pitch or a
harmonic interval from it is the track slipping onto a harmonic in a decay, no new note, and
in the style's notes such slipped frames are measured at the note's median pitch) and each
note's peak level. The output is additive synthesis of each note at its median pitch plus
the style's vibrato, with the template's harmonic levels at each frame's time since onset
scaled to the note's level plus the style's texture (:mod:`.harmonic_texture`), and noise
shaped by the template: attack, decay, spectral evolution, texture and vibrato come from the
style; pitch, rhythm and dynamics from the content.
"""

from __future__ import annotations

import warnings

import numpy as np

from hpc_nst.engine.harmonic_texture import add_texture, level_texture
from hpc_nst.engine.note_analysis import (
    HOP,
    SR,
    f0_track,
    fill_f0,
    note_onsets,
    split_notes,
    without_track_slips,
)

N_FFT, WIN = 2048, 1024  # 7.8 Hz bins: harmonics of C2 (65 Hz) resolved
TOP_HZ = 7800.0  # highest harmonic synthesised
MAX_HARMONICS = 80
#: Edges (frames since onset) of the template's time bins: fine at the attack, coarse later.
TAU_EDGES = np.array([0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 32, 40, 50, 64, 80, 100,
                      128, 160, 200, 256, 320, 400, 10**6])
F_GRID = np.geomspace(50.0, 8000.0, 49)  # log-frequency grid of the envelope
HARMONIC_CORRECTION = 24  # harmonics with their own correction term
FLOOR_DB = -80.0
RELEASE_S = 0.08  # fallback fade after the voicing ends (a style without audible releases)
RELEASE_FRAMES = 150  # release measured and applied up to 1.5 s after a note's body ends
RELEASE_DROP_DB = 6.0  # a note's level falling this much faster in 50 ms: its release began


def magnitude(audio: np.ndarray) -> np.ndarray:
    """|STFT| ``(bins, frames)`` scaled so that a sinusoid of amplitude A peaks at A."""
    import librosa

    win = np.hanning(WIN + 1)[:-1]
    spec = np.abs(librosa.stft(np.asarray(audio, dtype=np.float32), n_fft=N_FFT,
                               hop_length=HOP, win_length=WIN, window=win, center=True))
    return spec * (2.0 / win.sum())


def harmonic_levels(mag: np.ndarray, f0: np.ndarray) -> np.ndarray:
    """Amplitude (linear) of harmonics 1..H ``(frames, H)`` at ``f0``; 0 above TOP_HZ or
    where f0 is NaN."""
    frames = min(mag.shape[1], len(f0))
    out = np.zeros((frames, MAX_HARMONICS))
    h = np.arange(1, MAX_HARMONICS + 1)
    for t in range(frames):
        if not np.isfinite(f0[t]):
            continue
        freqs = h * f0[t]
        ok = freqs < TOP_HZ
        centre = np.rint(freqs[ok] * N_FFT / SR).astype(int)
        rows = np.clip(centre[:, None] + np.array([-1, 0, 1]), 0, mag.shape[0] - 1)
        out[t, : ok.sum()] = mag[rows, t].max(axis=1)
    return out


def _db(x: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(x, 1e-9))


class NoteTemplate:
    """Harmonic levels (dB re. the note's peak) by time since onset and frequency."""

    def __init__(self, envelope: np.ndarray, correction: np.ndarray,
                 release: np.ndarray | None = None, noise: np.ndarray | None = None,
                 vibrato: tuple[float, float] = (0.0, 0.0), by_index: np.ndarray | None = None,
                 texture: np.ndarray | None = None):
        # dB per frame and harmonic 1..TEXTURE_HARMONICS, added from the attack on (None: smooth)
        self.texture = texture
        # dB of harmonics 1..HARMONIC_CORRECTION by tau bin (NaN: use the envelope)
        self.by_index = by_index
        self.vibrato = vibrato  # (depth in cents, std of the sinusoid; rate in Hz)
        self.envelope = envelope  # (tau bins, F_GRID)
        # between the harmonics: level per bin (dB re. the note's peak) by tau bin and F_GRID
        self.noise = noise if noise is not None else np.full_like(envelope, FLOOR_DB)
        self.correction = correction  # (HARMONIC_CORRECTION,)
        # dB re. the note's last body frame (:func:`_body_end`), for 1..len frames after it
        self.release = release if release is not None else default_release()

    @classmethod
    def from_audio(cls, audio: np.ndarray) -> NoteTemplate:
        f0, voiced = f0_track(audio)
        mag = magnitude(audio)
        n = min(mag.shape[1], len(f0))
        notes = split_notes(note_onsets(f0[:n], voiced[:n], audio), n)
        held, f0 = np.full(n, np.nan), f0[:n].copy()
        for a, b in notes:
            voiced_f0 = f0[a:b][np.isfinite(f0[a:b])]
            if len(voiced_f0):
                f0[a:b] = without_track_slips(f0[a:b], float(np.median(voiced_f0)))
            held[a:b] = fill_f0(f0, a, b)
        levels = harmonic_levels(mag, held)
        taus, freqs, dbs, hs = [], [], [], []
        tails, bodies = [], []
        vibratos: list[tuple[float, float]] = []
        noise_pts: list[tuple[int, np.ndarray]] = []  # (tau bin, dB per F_GRID band)
        between = _between_harmonics(mag, held)
        for a, b in notes:
            seg = levels[a:b]
            total = np.sqrt((seg ** 2).sum(axis=1))
            if total.max() <= 0:
                continue
            ref = _db(total.max())
            vib = _note_vibrato(f0[a:b])
            if vib is not None:
                vibratos.append(vib)
            voiced_at = np.flatnonzero(np.isfinite(f0[a:b]))
            last = _body_end(_db(total), int(voiced_at[-1])) if len(voiced_at) else b - a
            bodies.append((a, a + last + 1))
            if last + 1 < b - a:
                tails.append(_db(total[last + 1:]) - _db(total[last]))
            for t in range(a, b):
                if between[t] is not None:
                    noise_pts.append((t - a, between[t] - ref))
                if not np.isfinite(f0[t]) or t - a > last:
                    continue
                h = np.flatnonzero(levels[t] > 0) + 1
                taus.append(np.full(len(h), t - a))
                freqs.append(h * f0[t])
                dbs.append(_db(levels[t, h - 1]) - ref)
                hs.append(h)
        if not taus:
            return cls(np.full((len(TAU_EDGES) - 1, len(F_GRID)), -30.0),
                       np.zeros(HARMONIC_CORRECTION))
        tau, freq, db, h = (np.concatenate(x) for x in (taus, freqs, dbs, hs))
        db = np.maximum(db, FLOOR_DB)
        ti = np.clip(np.searchsorted(TAU_EDGES, tau, side="right") - 1, 0, len(TAU_EDGES) - 2)
        fi = np.clip(np.rint(np.interp(np.log(freq), np.log(F_GRID),
                                       np.arange(len(F_GRID)))).astype(int), 0,
                     len(F_GRID) - 1)
        env = np.full((len(TAU_EDGES) - 1, len(F_GRID)), np.nan)
        for i in range(env.shape[0]):
            for j in range(env.shape[1]):
                sel = (ti == i) & (fi == j)
                if sel.sum() >= 2:
                    env[i, j] = np.median(db[sel])
        env = _fill(env)
        resid = db - env[ti, fi]
        corr = np.array([np.median(resid[h == k]) if (h == k).sum() >= 3 else 0.0
                         for k in range(1, HARMONIC_CORRECTION + 1)])
        noise = np.full_like(env, np.nan)
        if noise_pts:
            nti = np.clip(np.searchsorted(TAU_EDGES, [p[0] for p in noise_pts], side="right") - 1,
                          0, len(TAU_EDGES) - 2)
            vals = np.stack([p[1] for p in noise_pts])
            for i in range(noise.shape[0]):
                if (nti == i).sum() >= 2:
                    with warnings.catch_warnings():  # a band with no bin away from harmonics
                        warnings.simplefilter("ignore", RuntimeWarning)
                        noise[i] = np.nanmedian(vals[nti == i], axis=0)
        noise = _fill(np.where(np.isfinite(noise), noise, np.nan)) if np.isfinite(noise).any() \
            else None
        vibrato = tuple(np.median(np.array(vibratos), axis=0)) if vibratos else (0.0, 0.0)
        by_index = np.full((len(TAU_EDGES) - 1, HARMONIC_CORRECTION), np.nan)
        for i in range(by_index.shape[0]):
            for k in range(HARMONIC_CORRECTION):
                sel = (ti == i) & (h == k + 1)
                if sel.sum() >= 2:
                    by_index[i, k] = np.median(db[sel])
        for k in range(HARMONIC_CORRECTION):  # a tau bin without data: the nearest one's
            good = np.flatnonzero(np.isfinite(by_index[:, k]))
            if len(good):
                for i in np.flatnonzero(~np.isfinite(by_index[:, k])):
                    by_index[i, k] = by_index[good[np.argmin(np.abs(good - i))], k]
        return cls(env, corr, release_curve(tails), noise, vibrato, by_index,
                   level_texture(levels, bodies))

    def levels_db(self, tau: int, f0: float, textured: bool = True) -> np.ndarray:
        """dB of harmonics 1..H (re. note peak) at ``tau`` frames after onset (the style's
        texture added unless ``textured`` is False); -inf above TOP_HZ."""
        h = np.arange(1, MAX_HARMONICS + 1)
        freqs = h * f0
        i = min(int(np.searchsorted(TAU_EDGES, tau, side="right") - 1), len(TAU_EDGES) - 2)
        db = np.interp(np.log(np.clip(freqs, F_GRID[0], F_GRID[-1])), np.log(F_GRID),
                       self.envelope[i])
        low = db[:HARMONIC_CORRECTION] + self.correction
        if self.by_index is not None:  # by number where the style has data, else by frequency
            low = np.where(np.isfinite(self.by_index[i]), self.by_index[i], low)
        db[:HARMONIC_CORRECTION] = low
        db[freqs >= TOP_HZ] = -np.inf
        return add_texture(db, self.texture, tau) if textured else db


def _body_end(db: np.ndarray, last_voiced: int) -> int:
    """A note's last frame before its release: its last voiced one, less the voiced frames at
    its end (never its first half) where the level falls more than RELEASE_DROP_DB faster in
    50 ms than it did in the 50 ms before: a release that is still voiced, measured as the
    release and not as the note's level at that time (otherwise the template's last time bins
    hold the notes' ends and a held style fades on longer notes). A note that decays fast all
    along (a short pluck) has no such change of pace and keeps its whole decay."""
    last = last_voiced
    floor = max(10, (last_voiced + 1) // 2)
    while last > floor and ((db[last - 5] - db[last]) - (db[last - 10] - db[last - 5])
                            > RELEASE_DROP_DB):
        last -= 1
    return last


def _note_vibrato(f0: np.ndarray) -> tuple[float, float] | None:
    """(depth: std in cents, rate in Hz) of a note's pitch modulation between 3 and 9 Hz after
    its first 50 ms; None for notes shorter than 0.25 s voiced."""
    cents = 1200 * np.log2(f0[np.isfinite(f0)])[5:]
    if len(cents) < 25:
        return None
    x = cents - np.polyval(np.polyfit(np.arange(len(cents)), cents, 1), np.arange(len(cents)))
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=256))
    freqs = np.fft.rfftfreq(256, d=HOP / SR)
    band = (freqs >= 3) & (freqs <= 9)
    rate = float(freqs[band][np.argmax(spec[band])])
    return float(np.std(x)), rate


def _between_harmonics(mag: np.ndarray, f0: np.ndarray) -> list[np.ndarray | None]:
    """Per frame: the level (dB, F_GRID bands) of the spectrum away from the harmonics of
    ``f0`` (each harmonic's +-3 bins removed), None where f0 is NaN."""
    n = min(mag.shape[1], len(f0))
    freqs = np.arange(mag.shape[0]) * SR / N_FFT
    band = np.clip(np.rint(np.interp(np.log(np.maximum(freqs, 1.0)), np.log(F_GRID),
                                     np.arange(len(F_GRID)))).astype(int), 0, len(F_GRID) - 1)
    out: list[np.ndarray | None] = []
    for t in range(n):
        if not np.isfinite(f0[t]):
            out.append(None)
            continue
        dist = np.abs(freqs / f0[t] - np.rint(freqs / f0[t])) * f0[t] * N_FFT / SR
        keep = (dist > 3) & (freqs > 40)
        db = np.full(len(F_GRID), np.nan)
        col = mag[:, t]
        for j in range(len(F_GRID)):
            sel = keep & (band == j)
            if sel.any():
                db[j] = _db(np.median(col[sel]))
        out.append(db)
    return out


def default_release() -> np.ndarray:
    """The release of a style without a measured one: 60 dB over RELEASE_S (dB per frame
    after the voicing ends, RELEASE_FRAMES frames)."""
    return -np.arange(1, RELEASE_FRAMES + 1) * (60.0 / (RELEASE_S * SR / HOP))


def release_curve(tails: list[np.ndarray]) -> np.ndarray | None:
    """Median level of ``tails`` (dB re. a note's last frame before its release: the body's end
    for ``harmonic``, the last voiced frame for ``sampler``) 1..RELEASE_FRAMES frames after
    it, extended by the last measured slope; None without any measured release."""
    if not tails:
        return None
    curve = np.full(RELEASE_FRAMES, np.nan)
    for d in range(RELEASE_FRAMES):
        vals = [tail[d] for tail in tails if len(tail) > d]
        if len(vals) >= max(1, len(tails) // 4):
            curve[d] = np.median(vals)
    good = np.flatnonzero(np.isfinite(curve))
    if len(good) == 0:
        return None
    last = good[-1]
    slope = min(-0.2, (curve[last] - curve[0]) / max(last, 1))  # dB per frame, decaying
    for d in range(last + 1, RELEASE_FRAMES):
        curve[d] = curve[last] + slope * (d - last)
    curve = np.minimum.accumulate(np.minimum(curve, 0.0))  # a release never grows
    return np.maximum(curve, FLOOR_DB)


def _fill(env: np.ndarray) -> np.ndarray:
    """Fill NaN cells: along frequency within a time bin, then from the nearest time bin."""
    out = env.copy()
    cols = np.arange(out.shape[1])
    for i in range(out.shape[0]):
        good = np.isfinite(out[i])
        if good.sum() >= 1:
            out[i] = np.interp(cols, cols[good], out[i, good])
    rows = np.flatnonzero(np.isfinite(out[:, 0]))
    if len(rows) == 0:
        return np.full_like(out, -30.0)
    for i in range(out.shape[0]):
        if not np.isfinite(out[i, 0]):
            out[i] = out[rows[np.argmin(np.abs(rows - i))]]
    return out


def resynthesise(content: np.ndarray, template: NoteTemplate, seed: int = 0) -> np.ndarray:
    """The content's notes (f0, onsets, note levels) played with ``template``'s harmonics.
    The style's release starts at each content note's last voiced frame (a content note's own
    release, while still voiced, is played at the template's level of that time: not
    separated as in the style's analysis)."""
    f0, voiced = f0_track(content)
    mag = magnitude(content)
    levels = harmonic_levels(mag, f0)
    n = min(len(f0), levels.shape[0])
    total = np.sqrt((levels[:n] ** 2).sum(axis=1))
    amps = np.zeros((n, MAX_HARMONICS))
    noise_db = np.full((n, len(F_GRID)), -np.inf)
    track = np.full(n, np.nan)
    for a, b in split_notes(note_onsets(f0[:n], voiced[:n], content), n):
        seg_f0 = fill_f0(f0[:n], a, b)
        if not np.isfinite(seg_f0).any():
            continue
        peak = total[a:b].max()
        if peak <= 0:
            continue
        last_voiced = a + int(np.flatnonzero(np.isfinite(f0[a:b]))[-1])
        seg_f0 = _restyle_pitch(seg_f0, template.vibrato)
        for t in range(a, b):
            track[t] = seg_f0[t - a]
            tau_bin = min(int(np.searchsorted(TAU_EDGES, t - a, side="right") - 1),
                          len(TAU_EDGES) - 2)
            if t <= last_voiced:
                amps[t] = peak * 10.0 ** (template.levels_db(t - a, track[t]) / 20.0)
                noise_db[t] = _db(peak) + template.noise[tau_bin]
                if t == last_voiced:  # the release starts from the level without texture
                    released = peak * 10.0 ** (template.levels_db(t - a, track[t], False) / 20.0)
            elif t - last_voiced <= len(template.release):
                fall = template.release[t - last_voiced - 1]
                amps[t] = released * 10.0 ** (fall / 20.0)
                noise_db[t] = noise_db[last_voiced] + fall
    out = additive(track, amps, len(content))
    return out + shaped_noise(noise_db, len(content), seed)


def _restyle_pitch(f0: np.ndarray, vibrato: tuple[float, float]) -> np.ndarray:
    """A note's f0 at its median pitch (the content instrument's own modulation removed) with
    the style's vibrato (sinusoidal, std ``depth`` cents at ``rate`` Hz, faded in over
    150 ms)."""
    good = np.isfinite(f0)
    if not good.any():
        return f0
    depth, rate = vibrato
    t = np.arange(len(f0)) * HOP / SR
    ramp = np.clip(t / 0.15, 0.0, 1.0)
    cents = depth * np.sqrt(2.0) * ramp * np.sin(2 * np.pi * rate * t) if depth > 0 else 0.0
    return np.where(good, np.median(f0[good]) * 2.0 ** (cents / 1200.0), np.nan)


def shaped_noise(band_db: np.ndarray, n_samples: int, seed: int = 0) -> np.ndarray:
    """Noise whose (``magnitude``-scaled) STFT follows ``band_db`` ``(frames, F_GRID)``."""
    import librosa

    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n_samples).astype(np.float32)
    win = np.hanning(WIN + 1)[:-1]
    spec = librosa.stft(white, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window=win,
                        center=True)
    unit = np.sqrt(np.mean(np.abs(spec) ** 2)) * (2.0 / win.sum())
    freqs = np.arange(spec.shape[0]) * SR / N_FFT
    lf = np.log(np.clip(freqs, F_GRID[0], F_GRID[-1]))
    frames = min(spec.shape[1], len(band_db))
    gain = np.zeros(spec.shape)
    for t in range(frames):
        if np.isfinite(band_db[t]).any():
            want = 10.0 ** (np.interp(lf, np.log(F_GRID), band_db[t]) / 20.0)
            gain[:, t] = want / unit
    y = librosa.istft(spec * gain, hop_length=HOP, win_length=WIN, window=win, center=True,
                      length=n_samples)
    return y.astype(np.float32)


def additive(f0: np.ndarray, amps: np.ndarray, n_samples: int) -> np.ndarray:
    """Sum of harmonics of the frame-rate ``f0`` (NaN: silent) with frame-rate amplitudes
    ``(frames, H)``, interpolated to samples; phases accumulate (no clicks at pitch changes)."""
    frames = len(f0)
    t_frames = np.arange(frames) * HOP
    t = np.arange(n_samples)
    f0_filled = np.where(np.isfinite(f0), f0, 0.0)
    # hold the pitch through silent frames so the phase stays continuous
    good = np.isfinite(f0)
    if good.any():
        idx = np.maximum.accumulate(np.where(good, np.arange(frames), 0))
        f0_filled = np.where(good, f0, f0_filled[idx])
        first = np.argmax(good)
        f0_filled[:first] = f0[first]
    f0_s = np.interp(t, t_frames, f0_filled)
    phase = 2 * np.pi * np.cumsum(f0_s) / SR
    out = np.zeros(n_samples)
    for k in range(amps.shape[1]):
        if not amps[:, k].any():
            continue
        a_s = np.interp(t, t_frames, amps[:, k])
        a_s[(k + 1) * f0_s >= SR / 2 - 100] = 0.0
        out += a_s * np.sin((k + 1) * phase)
    return out.astype(np.float32)
