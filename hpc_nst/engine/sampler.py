"""Note sampling: the content's notes played with the style's own recorded notes.

For monophonic material; the analysis (f0 by harmonic summation, onsets) is
:mod:`hpc_nst.engine.harmonic`'s. The style is cut into notes, each separated from its
neighbours by harmonic masks (the reverb of the notes before it removed, its own tail kept
away from the notes after it; a masked tail replaced by the style's measured release). Each
content note (onset, voiced length, median pitch and slow glide, peak level) is played by
the style note nearest in pitch (one long enough preferred): pitch-shifted by resampling (the
band that empties refilled with the original's), its sustain continued with pieces of itself
aligned by cross-correlation (its level trend kept: a plucked note keeps decaying) or cut into
its tail, scaled to the content note's peak and added at its onset; finally the output is
kept within GATE_DB of the content's level, so the content's rests stay silent. Attack,
decay, noise, vibrato and how harmonics evolve are the style instrument's own recorded
sound, not a model of them; pitch, rhythm and dynamics are the content's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpc_nst.engine.harmonic import (
    HOP,
    RELEASE_S,
    SR,
    f0_track,
    fill_f0,
    note_onsets,
    release_curve,
    split_notes,
)
from hpc_nst.errors import TransferError

PRE = HOP  # samples kept before a detected onset (an attack the 10 ms frames place late)
SEP_HOP = 128  # hop of the STFT that separates the style's notes
TAIL_S = 1.0  # longest tail (release, reverb) kept after a style note's voicing ends
TAIL_GAP_DB = 40.0  # a separated tail this far under the note's end 50 ms on is missing
ATTACK = 6 * HOP  # samples after the onset never extended
STRETCH_COST = 3.0  # semitones of pitch distance worth one doubling of a note's sustain
GLIDE_S = 0.15  # pitch movement slower than this (seconds) is followed; vibrato is not
RMS_WIN = 480  # 30 ms
TREND_R2 = 0.6
EXTEND_OVERLAP, EXTEND_PIECE = 320, 1600  # 20 ms crossfades, 100 ms pieces
GATE_DB = 12.0  # the output is kept within this of the content's level (its rests)
MIN_VOICED, QUIET_DB, STEADY = 6, 25.0, 0.6  # what a style note must be to be sampled
MIN_RISE_DB = 1.0
SUSTAIN_DB = 10.0  # a note's sustain: where its level is within this of its peak


@dataclass(frozen=True)
class Note:
    """One analysed note: where it is (frames), its voiced length, pitch and peak level."""

    onset: int  # frame
    end: int  # frame of the next onset (or the clip's end)
    voiced_end: int  # frame after its last voiced frame
    f0: float  # median Hz
    peak: float  # peak frame RMS within the voiced part
    contour: np.ndarray  # f0 per frame onset..voiced_end (held through unvoiced frames)
    sustain_end: int  # frame after the last one within SUSTAIN_DB of the peak
    rise: float  # dB from the level just before the onset to the peak (an attack: > 0)


@dataclass(frozen=True)
class StyleNote:
    """A style note's audio: PRE samples before its onset, its sustain (``body`` samples from
    the onset: until its level falls SUSTAIN_DB under its peak), then the rest of it and its
    own tail (release and reverb), separated from the notes around it."""

    note: Note
    audio: np.ndarray
    body: int


def frame_rms(audio: np.ndarray) -> np.ndarray:
    """RMS of 30 ms around each 10 ms frame centre (frame ``t`` at sample ``t * HOP``)."""
    a = np.asarray(audio, dtype=np.float64)
    padded = np.pad(a, RMS_WIN // 2)
    csum = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    starts = np.arange(0, len(a) + 1, HOP)
    return np.sqrt((csum[starts + RMS_WIN] - csum[starts]) / RMS_WIN)


def analyse_notes(audio: np.ndarray) -> tuple[list[Note], np.ndarray]:
    """The notes of a monophonic signal (those with a voiced frame) and its frame RMS."""
    f0, voiced = f0_track(audio)
    rms = frame_rms(audio)
    n = min(len(f0), len(rms))
    notes = []
    for a, b in split_notes(note_onsets(f0[:n], voiced[:n], audio), n):
        held = fill_f0(f0[:n], a, b)
        voiced_at = np.flatnonzero(np.isfinite(f0[a:b]))
        if len(voiced_at) == 0:
            continue
        ve = a + int(voiced_at[-1]) + 1
        peak = float(rms[a:ve].max())
        if peak <= 0:
            continue
        db = 20 * np.log10(np.maximum(rms[a:b], 1e-9))
        top = int(np.argmax(db[: ve - a]))
        near = np.flatnonzero(db[top: ve - a] >= db[top] - SUSTAIN_DB)
        before = float(rms[max(a - 2, 0)]) if a >= 2 else 0.0
        rise = 20 * np.log10(peak / before) if before > 0 else np.inf
        notes.append(Note(a, b, ve, float(np.median(f0[a:b][voiced_at])), peak,
                          held[: ve - a], a + top + int(near[-1]) + 1, rise))
    return notes, rms[:n]


def reliable(notes: list[Note]) -> list[Note]:
    """The notes worth sampling: voiced for at least MIN_VOICED frames, within QUIET_DB of
    the loudest, with an attack (MIN_RISE_DB over the level before: not a slip of the onset
    detector in a note's decay) and a steady pitch (STEADY of their voiced frames within 50
    cents of their median: no octave jumps of the f0 track); all of them if none is."""
    if not notes:
        return notes
    loudest = max(n.peak for n in notes)
    keep = []
    for n in notes:
        cents = 1200 * np.abs(np.log2(n.contour / n.f0))
        if (len(n.contour) >= MIN_VOICED and 20 * np.log10(loudest / n.peak) <= QUIET_DB
                and np.mean(cents <= 50) >= STEADY and n.rise >= MIN_RISE_DB):
            keep.append(n)
    return keep or notes


def _comb(freqs: np.ndarray, f0: float) -> np.ndarray:
    """1 near the harmonics of ``f0`` (within 16 Hz or 2 %), 0 elsewhere, per frequency."""
    h = np.maximum(np.rint(freqs / f0), 1.0)
    return (np.abs(freqs - h * f0) <= np.maximum(16.0, 0.02 * h * f0)).astype(np.float32)


def _tail_db(seg: np.ndarray, note: Note) -> np.ndarray | None:
    """dB per frame after a style note's voicing ends, re. its last voiced frame; None where
    the separated tail is missing (TAIL_GAP_DB under after 50 ms, or shorter than 100 ms) or
    is not a release (it rises)."""
    end = (note.voiced_end - note.onset) * HOP + PRE
    level = 20 * np.log10(np.maximum(frame_rms(seg), 1e-9))
    k = end // HOP
    if (k < 1 or len(level) - k < 10 or level[k + 5] < level[k - 1] - TAIL_GAP_DB
            or level[k:].max() > level[k - 1] + 3.0):  # missing, or not a release (rising)
        return None
    return level[k:] - level[k - 1]


def _with_release(seg: np.ndarray, end: int, release: np.ndarray) -> np.ndarray:
    """``seg`` up to ``end`` then its last 60 ms stretched over the release and faded by it
    (dB per frame after the voicing ends)."""
    src = seg[max(end - 6 * HOP, 0): end]
    n = len(release) * HOP
    if len(src) < 2 * HOP:
        return seg[:end].copy()
    gain = 10.0 ** (np.interp(np.arange(n) / HOP, np.arange(len(release) + 1),
                              np.concatenate([[0.0], release])) / 20.0)
    return np.concatenate([seg[:end], _stretch(src, n) * gain])


@dataclass(frozen=True)
class StyleBank:
    """The style's notes, each separated from the others."""

    notes: tuple[StyleNote, ...]

    @classmethod
    def from_audio(cls, audio: np.ndarray) -> StyleBank:
        """Cut the style into notes. Each note's STFT (2048 points, 1024-sample window, 128
        hop) is masked: before its voicing ends, the harmonics of the two notes before it
        (their reverb and release, at their own pitches) are removed where they are not its
        own; after, only its own harmonics are kept (up to TAIL_S), away from those of the
        two notes that follow, once started."""
        import librosa

        a = np.asarray(audio, dtype=np.float32)
        notes = reliable(analyse_notes(a)[0])  # (an unreliable one's comb masks good ones)
        if not notes:
            raise TransferError("the style has no pitched note to sample (method sampler needs "
                                "a monophonic recording of a pitched instrument or voice): "
                                "choose another style, or another method such as eq or nst")
        spec = librosa.stft(a, n_fft=2048, win_length=1024, hop_length=SEP_HOP)
        freqs = np.arange(spec.shape[0]) * SR / 2048
        combs = [_comb(freqs, n.f0) for n in notes]
        times = np.arange(spec.shape[1]) * SEP_HOP
        segs = []
        for j, note in enumerate(notes):
            on, ve = note.onset * HOP, note.voiced_end * HOP
            hi = min(ve + int(TAIL_S * SR), len(a))
            k0, k1 = int((on - PRE) // SEP_HOP), min(int(np.ceil(hi / SEP_HOP)) + 4, len(times))
            k0 = max(k0 - 4, 0)
            mask = np.ones((spec.shape[0], k1 - k0), np.float32)
            own = combs[j][:, None]
            for i in range(max(j - 2, 0), j):
                mask *= 1.0 - combs[i][:, None] * (1.0 - own)
            after = times[k0:k1] >= ve
            later = np.zeros((spec.shape[0], k1 - k0), np.float32)
            for i in range(j + 1, min(j + 3, len(notes))):
                started = times[k0:k1] >= notes[i].onset * HOP - PRE
                later = np.maximum(later, combs[i][:, None] * started[None, :])
            mask = np.where(after[None, :], own * (1.0 - later), mask)
            part = librosa.istft(spec[:, k0:k1] * mask, win_length=1024, hop_length=SEP_HOP,
                                 n_fft=2048, length=(k1 - k0) * SEP_HOP)
            start = on - PRE - k0 * SEP_HOP  # sample of part at on - PRE
            seg = part[max(start, 0): start + (hi - on + PRE)]
            if start < 0:
                seg = np.concatenate([np.zeros(-start, np.float32), seg])
            segs.append(seg.astype(np.float64))
        tails = [_tail_db(seg, n) for seg, n in zip(segs, notes)]
        release = release_curve([t for t in tails if t is not None])
        if release is None:
            release = -np.arange(1, 151) * (60.0 / (RELEASE_S * SR / HOP))
        bank = []
        for seg, note, tail in zip(segs, notes, tails):
            if tail is None:  # its harmonics masked by the next notes', or the clip's end
                seg = _with_release(seg, (note.voiced_end - note.onset) * HOP + PRE, release)
            fade = min(len(seg), int(0.05 * SR))
            seg[len(seg) - fade:] *= np.linspace(1.0, 0.0, fade)
            bank.append(StyleNote(note, seg, (note.sustain_end - note.onset) * HOP))
        return cls(tuple(bank))

    def choose(self, f0: float, want: int) -> tuple[StyleNote, float]:
        """The style note to play a note of ``f0`` Hz sounding ``want`` samples, and the pitch
        ratio to apply: the nearest in pitch, STRETCH_COST semitones added per doubling its
        sustain would need."""
        best, best_cost = None, np.inf
        for sn in self.notes:
            ratio = f0 / sn.note.f0
            shifted_body = sn.body / ratio
            short = max(0.0, np.log2(want / max(shifted_body, 1.0)))
            cost = abs(12 * np.log2(ratio)) + STRETCH_COST * short
            if cost < best_cost:
                best, best_cost = sn, cost
        assert best is not None
        return best, f0 / best.note.f0


def _shift(audio: np.ndarray, ratio: float) -> np.ndarray:
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


def _glide(y: np.ndarray, cents: np.ndarray, start: int) -> np.ndarray:
    """``y`` re-read from sample ``start`` on at a rate following ``cents`` (per frame, the
    deviation from the note's pitch): a slow pitch movement imposed on a fixed-pitch sample."""
    if not np.any(np.abs(cents) > 10):
        return y
    rate = np.interp(np.arange(len(y) - start) / HOP, np.arange(len(cents)), 2.0 ** (cents / 1200))
    pos = start + np.concatenate([[0.0], np.cumsum(rate[:-1])])
    pos = pos[pos <= len(y) - 1]
    return np.concatenate([y[:start], np.interp(pos, np.arange(len(y)), y)])


def _slow_cents(contour: np.ndarray, f0: float) -> np.ndarray:
    cents = 1200 * np.log2(contour / f0)
    k = max(1, int(GLIDE_S * SR / HOP))
    if len(cents) <= k:
        return np.full(len(cents), float(np.median(cents)) if len(cents) else 0.0)
    pad = np.pad(cents, (k // 2, k - k // 2 - 1), mode="edge")
    return np.convolve(pad, np.ones(k) / k, mode="valid")


def _stretch(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` time-stretched (phase vocoder, pitch kept) to ``length`` samples."""
    import librosa

    out = librosa.effects.time_stretch(x.astype(np.float32), rate=len(x) / length, n_fft=512,
                                       hop_length=128)
    return np.pad(out, (0, max(length - len(out), 0)))[:length].astype(np.float64)


def _trend_db_per_sample(x: np.ndarray) -> float:
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


def _extend(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` continued to ``length`` samples with pieces of its second half, each placed where
    it best continues the waveform (cross-correlation over a 20 ms overlap, crossfaded): the
    sustain keeps its own pitch, noise and modulation rates, which a phase vocoder smears."""
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
        out[-1] = out[-1].copy()
        out[-1][-ov:] = out[-1][-ov:] * (1.0 - xf) + chunk[:ov] * xf
        out.append(chunk[ov:])
        have += len(chunk) - ov
        last = chunk[-ov:]
    return np.concatenate(out)[:length]


def _fit(y: np.ndarray, sn: StyleNote, ratio: float, want: int) -> np.ndarray:
    """The style note ``sn`` shifted by ``ratio`` (``y``: onset at PRE) made to sound for
    ``want`` samples after its onset, then its tail: its sustain (after the attack) is
    time-stretched where the content note is longer, or cut into the tail (at the level
    reached) where it is shorter."""
    pre = PRE
    body = int(round(sn.body / ratio))
    head, tail = y[: pre + body], y[pre + body:]
    if body < want and body > ATTACK + HOP:  # extend the sustain, continuing its trend
        sustain = head[pre + ATTACK:]
        longer = _extend(sustain, want - ATTACK)
        longer[len(sustain):] *= 10.0 ** (_trend_db_per_sample(sustain)
                                          * np.arange(1, len(longer) - len(sustain) + 1) / 20.0)
        head = np.concatenate([head[: pre + ATTACK], longer])
    elif body > want:  # cut where the content note ends; the tail follows at that level
        cut = pre + want
        before = float(np.sqrt(np.mean(head[max(cut - HOP, 0): cut] ** 2)))
        after = float(np.sqrt(np.mean(tail[:HOP] ** 2))) if len(tail) >= HOP else 0.0
        gain = min(before / after, 4.0) if after > 0 else 0.0
        cont = head[cut:]
        n_x = min(2 * HOP, len(cont))  # crossfade from the note into its tail
        xf = np.sin(np.linspace(0.0, np.pi / 2, n_x)) ** 2
        if len(tail) >= n_x:
            tail = tail * gain
            tail[:n_x] = tail[:n_x] * xf + cont[:n_x] * (1.0 - xf)
        else:  # no tail measured (the clip's end): a short fade
            n_rel = min(int(RELEASE_S * SR), len(cont))
            tail = cont[:n_rel] * np.linspace(1.0, 0.0, n_rel)
        head = head[:cut]
    return _faded_in(np.concatenate([head, tail]))


def _faded_in(y: np.ndarray) -> np.ndarray:
    """``y`` with its pre-roll (the previous note's end) faded in."""
    y = y.copy()
    y[:PRE] *= np.sin(np.linspace(0.0, np.pi / 2, PRE)) ** 2
    return y


def play(content: np.ndarray, bank: StyleBank) -> np.ndarray:
    """The content's notes played with ``bank``'s notes; the content's length."""
    n_out = len(content)
    out = np.zeros(n_out + SR, dtype=np.float64)
    notes, _ = analyse_notes(np.asarray(content, dtype=np.float32))
    for note in notes:
        want = (note.voiced_end - note.onset) * HOP
        sn, ratio = bank.choose(note.f0, want)
        y = _shift(sn.audio, ratio)
        body = int(round(sn.body / ratio))
        level = frame_rms(y[PRE: PRE + max(body, HOP)]).max()  # the style note's peak
        y = _fit(y, sn, ratio, want)
        y = _glide(y, _slow_cents(note.contour, note.f0), PRE)
        if level <= 0:
            continue
        y = y * (note.peak / level)
        start = note.onset * HOP - PRE
        lo = max(start, 0)
        seg = y[lo - start:]
        seg = seg[: len(out) - lo]
        out[lo: lo + len(seg)] += seg
    return _gate(out[:n_out], np.asarray(content, dtype=np.float64), GATE_DB).astype(np.float32)


def _gate(out: np.ndarray, content: np.ndarray, margin_db: float) -> np.ndarray:
    """``out`` attenuated wherever it is more than ``margin_db`` louder than the content
    (rests, the content's releases): the notes' levels were matched to the content's, so
    this keeps the content's silences."""
    ro, rc = frame_rms(out), frame_rms(content)
    n = min(len(ro), len(rc))
    limit = rc[:n] * 10.0 ** (margin_db / 20.0)
    gain = np.minimum(1.0, limit / np.maximum(ro[:n], 1e-12))
    gain = np.convolve(np.pad(gain, 1, mode="edge"), np.ones(3) / 3, mode="valid")
    return out * np.interp(np.arange(len(out)) / HOP, np.arange(n), gain)
