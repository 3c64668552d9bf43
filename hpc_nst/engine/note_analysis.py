"""Reading a monophonic recording as notes: the f0 track, the frame level, the onsets, and
what each note is (pitch, peak, attack); shared by the ``harmonic`` and ``sampler`` methods.

The f0 track is harmonic summation over a fine log-frequency grid; onsets are voicing starts,
pitch jumps and energy re-attacks (:func:`detected_onsets`), less those that bring no attack
at the previous note's pitch or a harmonic interval from it (:func:`without_slips`: the f0
track slipping onto a harmonic as a note decays, where the energy detector fires on the
fading level). Within a note, frames far from its median pitch are read as the median
(:func:`without_track_slips`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

SR = 16000
HOP = 160  # 100 frames per second, as the engine's STFT
FMIN, FMAX = 65.0, 2093.0  # C2..C7 (pYIN range, as the pitch metric)
VOICING_DB = 45.0  # frames this far below the loudest are unvoiced
RMS_WIN = 480  # 30 ms
MIN_RISE_DB = 1.0  # an attack: a note's peak this far over the level 20 ms before its onset
HARMONIC_JUMPS = (12, 19, 24, 28, 31)  # semitones from a note's f0 to its 2nd-6th harmonics
FOLD_SEMITONES = 6.0  # a frame this far from its note's median pitch is a tracking slip


def short_stft(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - librosa.stft's own
    """``librosa.stft`` without its warning for a clip shorter than ``n_fft`` (a note or a
    0.1 s content: the centred frames are zero-padded, as they are for longer clips' ends)."""
    import librosa

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is too large for input signal")
        return librosa.stft(*args, **kwargs)


def f0_track(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz, voiced) per 10 ms frame (centred); f0 is NaN where unvoiced.

    Harmonic summation on a fine log-frequency grid (1/8 semitone, C2..C7) over a 4096-point
    spectrum: each candidate collects the compressed magnitude at its first 8 harmonics with
    decaying weights, so a nearly pure high tone (a harp's top notes, where pYIN at 16 kHz
    falls to a subharmonic) is found at its own frequency and a rich one at its fundamental.
    A frame is voiced when it is within VOICING_DB of the loudest frame and its best candidate
    stands well above the spectrum's mean.
    """
    a = np.asarray(audio, dtype=np.float32)
    n = 1 + len(a) // HOP
    if not np.any(a):
        return np.full(n, np.nan), np.zeros(n, bool)
    n_fft = 4096
    mag = np.abs(short_stft(a, n_fft=n_fft, hop_length=HOP, win_length=2048,
                            center=True))[:, :n]
    comp = np.log1p(mag / (mag.max() * 1e-3))
    cands = FMIN * 2.0 ** (np.arange(int(12 * 8 * np.log2(FMAX / FMIN)) + 1) / 96.0)
    sal = np.zeros((len(cands), comp.shape[1]))
    for h in range(1, 9):
        pos = cands * h * n_fft / SR
        ok = pos < comp.shape[0] - 1
        lo = np.floor(pos[ok]).astype(int)
        frac = (pos[ok] - lo)[:, None]
        sal[ok] += 0.8 ** (h - 1) * ((1 - frac) * comp[lo] + frac * comp[lo + 1])
    best = sal.argmax(axis=0)
    f0 = cands[best]
    level = 10 * np.log10(np.maximum((mag ** 2).sum(axis=0), 1e-20))
    peaky = sal.max(axis=0) > 2.0 * (comp.mean(axis=0) * 3.0 + 1e-9)
    voiced = (level > level.max() - VOICING_DB) & peaky
    f0 = np.where(voiced, f0, np.nan)
    pad = n - len(f0)
    if pad > 0:
        f0, voiced = np.append(f0, [np.nan] * pad), np.append(voiced, [False] * pad)
    return f0, voiced


def frame_rms(audio: np.ndarray) -> np.ndarray:
    """RMS of 30 ms around each 10 ms frame centre (frame ``t`` at sample ``t * HOP``)."""
    a = np.asarray(audio, dtype=np.float64)
    padded = np.pad(a, RMS_WIN // 2)
    csum = np.concatenate([[0.0], np.cumsum(padded ** 2)])
    starts = np.arange(0, len(a) + 1, HOP)
    return np.sqrt((csum[starts + RMS_WIN] - csum[starts]) / RMS_WIN)


def note_onsets(f0: np.ndarray, voiced: np.ndarray, audio: np.ndarray,
                rms: np.ndarray | None = None) -> np.ndarray:
    """Onset frames: voicing starts, pitch jumps of at least half a semitone between voiced
    frames, and energy re-attacks (same pitch played again); less the detections that bring
    no attack at the previous note's pitch or a harmonic interval from it
    (:func:`without_slips`). ``rms``: ``frame_rms(audio)`` where the caller has it already."""
    rms = frame_rms(audio) if rms is None else rms
    n = min(len(f0), len(rms))
    return without_slips(detected_onsets(f0, voiced, audio), f0[:n], rms[:n])


def without_slips(onsets: np.ndarray, f0: np.ndarray, rms: np.ndarray) -> np.ndarray:
    """``onsets`` less those that start no new note: no attack (the note's peak under
    MIN_RISE_DB over the level 20 ms before) at the pitch of the note before it, or at a
    harmonic interval above or below it (HARMONIC_JUMPS: the f0 track slipping onto a harmonic
    or subharmonic as a note decays, where the energy detector fires on the fading level).
    Pitches are the notes' medians over their voiced frames; notes without a voiced frame or
    level are skipped. So a legato leap of an octave or a twelfth without any attack is taken
    for one note."""
    readings = [r for a, b in split_notes(onsets, len(f0))
                if (r := read_note(f0, rms, a, b)) is not None]
    spurious = {b.onset for a, b in zip(readings, readings[1:])
                if b.rise < MIN_RISE_DB and same_or_harmonic(a.f0, b.f0)}
    return np.array([t for t in onsets if int(t) not in spurious], dtype=int)


@dataclass(frozen=True)
class NoteReading:
    """What the onset rule and the ``sampler`` read of a note (frames ``onset..end``)."""

    onset: int
    voiced_end: int  # frame after its last voiced frame
    f0: float  # median over its voiced frames
    peak: float  # the highest frame RMS of its voiced part
    rise: float  # dB from the level 20 ms before the onset to the peak (an attack: > 0)


def read_note(f0: np.ndarray, rms: np.ndarray, a: int, b: int) -> NoteReading | None:
    """The reading of frames ``a..b`` as a note; None without a voiced frame or a level."""
    voiced_at = np.flatnonzero(np.isfinite(f0[a:b]))
    if len(voiced_at) == 0:
        return None
    ve = a + int(voiced_at[-1]) + 1
    peak = float(rms[a:ve].max())
    if peak <= 0:
        return None
    before = float(rms[a - 2]) if a >= 2 else 0.0
    rise = 20 * np.log10(peak / before) if before > 0 else np.inf
    return NoteReading(a, ve, float(np.median(f0[a:b][voiced_at])), peak, rise)


def same_or_harmonic(f0: float, other: float) -> bool:
    """Whether ``other`` is within 50 cents of ``f0`` or of a harmonic interval from it."""
    semitones = abs(12 * np.log2(other / f0))
    return min(abs(semitones - h) for h in (0, *HARMONIC_JUMPS)) < 0.5


def detected_onsets(f0: np.ndarray, voiced: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """Every candidate onset frame: voicing starts, pitch jumps of at least half a semitone
    between voiced frames, and energy re-attacks (same pitch played again)."""
    import torch

    from hpc_nst.audio.spectrogram import complex_stft
    from hpc_nst.config import STFTConfig
    from hpc_nst.engine.note_envelope import band_levels, detect_onsets, mel_weights

    n = len(f0)
    onsets = set()
    prev = np.nan
    for t in range(n):
        if voiced[t]:
            if not np.isfinite(prev) or abs(12 * np.log2(f0[t] / prev)) >= 0.5:
                onsets.add(t)
            prev = f0[t]
        else:
            prev = np.nan
    cfg = STFTConfig()
    mag = complex_stft(torch.as_tensor(np.asarray(audio, np.float32)), cfg).abs().numpy()
    energy = detect_onsets(band_levels(mag, mel_weights(mag.shape[0], SR)), SR / HOP)
    for t in energy:
        if t < n and not any(abs(t - o) <= 3 for o in onsets):
            onsets.add(int(t))
    # an onset just before voicing starts (an unvoiced attack) replaces that voicing start
    out = sorted(onsets)
    merged: list[int] = []
    for t in out:
        if merged and t - merged[-1] <= 3:
            continue
        merged.append(t)
    return np.asarray(merged, dtype=int)


def without_track_slips(track: np.ndarray, median: float) -> np.ndarray:
    """A note's f0 ``track`` with the frames over FOLD_SEMITONES from its ``median`` pitch (the
    track slipped onto a harmonic or subharmonic; a glide that wide is flattened too) read as
    the median; NaN frames stay NaN."""
    with np.errstate(invalid="ignore"):
        far = np.abs(12 * np.log2(track / median)) > FOLD_SEMITONES
    return np.where(far, median, track)


def split_notes(onsets: np.ndarray, n: int) -> list[tuple[int, int]]:
    ends = np.append(onsets[1:], n)
    return [(int(a), int(b)) for a, b in zip(onsets, ends) if b > a]


def fill_f0(f0: np.ndarray, a: int, b: int) -> np.ndarray:
    """A note's f0: unvoiced frames before its first voiced one take that f0, after the last
    one the last (the release holds the pitch); NaN when the note has no voiced frame."""
    seg = f0[a:b].copy()
    good = np.flatnonzero(np.isfinite(seg))
    if len(good) == 0:
        return seg
    seg[: good[0]] = seg[good[0]]
    for i in range(good[0] + 1, len(seg)):
        if not np.isfinite(seg[i]):
            seg[i] = seg[i - 1]
    return seg
