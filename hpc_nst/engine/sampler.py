"""Note sampling: the content's notes played with the style's own recorded notes.

For monophonic material; the analysis (f0 by harmonic summation, onsets) is
:mod:`hpc_nst.engine.harmonic`'s. The style is cut into notes, each separated from its
neighbours by harmonic masks (the reverb of the notes before it removed, its own tail kept
away from the notes after it; a masked tail replaced by the style's measured release).
Each content note (onset, voiced length, median pitch and slow glide, peak level) is played
by the style note nearest in pitch (one long enough preferred): pitch-shifted by resampling
(the band that empties refilled with the original's), its sustain continued with pieces of
itself aligned by cross-correlation (its level trend kept: a plucked note keeps decaying)
or cut into its tail, scaled to the content note's peak and added at its onset, where the
tails of the notes before it are lowered by NEXT_NOTE_DB; finally the output is kept within
GATE_DB of the content's level, so the content's rests stay silent. Attack, decay, noise,
vibrato and how harmonics evolve are the style instrument's own recorded sound, not a model
of them; pitch, rhythm and dynamics are the content's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hpc_nst.engine.harmonic import RELEASE_S, default_release, release_curve
from hpc_nst.engine.note_analysis import (
    HOP,
    MIN_RISE_DB,
    SR,
    f0_track,
    fill_f0,
    frame_rms,
    note_onsets,
    read_note,
    short_stft,
    split_notes,
    without_track_slips,
)
from hpc_nst.engine.sample_dsp import (
    extend,
    extension_start,
    glide,
    shift,
    slow_cents,
    stretch,
    trend_db_per_sample,
)
from hpc_nst.errors import TransferError

PRE = HOP  # samples kept before a detected onset (an attack the 10 ms frames place late)
SEP_HOP = 128  # hop of the STFT that separates the style's notes
TAIL_S = 1.0  # longest tail (release, reverb) kept after a style note's voicing ends
TAIL_GAP_DB = 40.0  # a separated tail this far under the note's end 50 ms on is missing
ATTACK = 6 * HOP  # samples after the onset never extended
STRETCH_COST = 3.0  # semitones of pitch distance worth one doubling of a note's sustain
GATE_DB = 12.0  # the output is kept within this of the content's level (its rests)
MIN_VOICED, QUIET_DB, STEADY = 6, 25.0, 0.6  # what a style note must be to be sampled
NEXT_NOTE_DB = 6.0  # the earlier notes' tails lowered by this where a note starts (below)
SUSTAIN_DB = 10.0  # a note's sustain: where its level is within this of its peak


@dataclass(frozen=True)
class Note:
    """One analysed note: where it is (frames), its voiced length, pitch and peak level."""

    onset: int  # frame
    voiced_end: int  # frame after its last voiced frame
    f0: float  # median Hz
    peak: float  # peak frame RMS within the voiced part
    contour: np.ndarray  # f0 per frame onset..voiced_end (held through unvoiced frames)
    sustain_end: int  # frame after the last one (after the peak) within SUSTAIN_DB of it
    rise: float  # dB from the level just before the onset to the peak (an attack: > 0)
    voiced: np.ndarray  # bool per frame onset..voiced_end: the f0 track's own (not held) frames


@dataclass(frozen=True)
class StyleNote:
    """A style note's audio: PRE samples before its onset, its sustain (``body`` samples from
    the onset to ``Note.sustain_end``), then the rest of it and its own tail (release and
    reverb), separated from the notes around it."""

    note: Note
    audio: np.ndarray
    body: int


def analyse_notes(audio: np.ndarray) -> list[Note]:
    """The notes of a monophonic signal (those with a voiced frame), at the onsets of
    :func:`hpc_nst.engine.note_analysis.note_onsets` (a slip of the f0 track onto a harmonic in a
    note's decay is no new note there). A note's pitch is the median over all its frames: the
    longer reading wins (the pitch read before a slip instead made the dev split worse, LSD
    10.21 -> 10.68, as the track also settles onto the right pitch after a wrong attack)."""
    f0, voiced = f0_track(audio)
    rms = frame_rms(audio)
    n = min(len(f0), len(rms))
    return _build_notes(note_onsets(f0[:n], voiced[:n], audio, rms[:n]), f0[:n], rms[:n])


def _build_notes(onsets: np.ndarray, f0: np.ndarray, rms: np.ndarray) -> list[Note]:
    notes = []
    for a, b in split_notes(onsets, len(f0)):
        r = read_note(f0, rms, a, b)
        if r is None:
            continue
        ve = r.voiced_end
        db = 20 * np.log10(np.maximum(rms[a:b], 1e-9))
        top = int(np.argmax(db[: ve - a]))
        near = np.flatnonzero(db[top: ve - a] >= db[top] - SUSTAIN_DB)
        contour = without_track_slips(fill_f0(f0, a, b)[: ve - a], r.f0)
        notes.append(Note(a, ve, r.f0, r.peak, contour, a + top + int(near[-1]) + 1, r.rise,
                          np.isfinite(f0[a:ve])))
    return notes


def reliable(notes: list[Note]) -> list[Note]:
    """The notes worth sampling: voiced over at least MIN_VOICED frames, within QUIET_DB of
    the loudest, with an attack (MIN_RISE_DB over the level before: not a slip of the onset
    detector in a note's decay) and a steady pitch (STEADY of their voiced frames within 50
    cents of their median; slips of the f0 track onto a harmonic, already read as the median
    by :func:`hpc_nst.engine.note_analysis.without_track_slips`, count as steady: counting them
    unsteady rejects a note whose decay slipped, dev3 LSD 9.80 -> 9.89); all of them if none
    is."""
    if not notes:
        return notes
    loudest = max(n.peak for n in notes)
    keep = []
    for n in notes:
        cents = 1200 * np.abs(np.log2(n.contour[n.voiced] / n.f0))  # held frames not counted
        if (len(cents) >= MIN_VOICED and 20 * np.log10(loudest / n.peak) <= QUIET_DB
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
    # release[d]: frame d after the voicing ends (``end``), re. the last voiced frame
    gain = 10.0 ** (np.interp(np.arange(n) / HOP, np.arange(len(release)), release) / 20.0)
    return np.concatenate([seg[:end], stretch(src, n) * gain])


@dataclass(frozen=True)
class StyleBank:
    """The style's notes, each separated from the others."""

    notes: tuple[StyleNote, ...]

    @classmethod
    def from_audio(cls, audio: np.ndarray) -> StyleBank:
        """Cut the style into notes. Each note's STFT (2048 points, 1024-sample window, 128
        hop) is masked: before its voicing ends, the harmonics of the two notes before it
        (their reverb and release, at their own pitches) are removed where they are not its
        own; after, only its own harmonics are kept (up to TAIL_S), away from those of every
        note that starts within it, once started (a note a third note later, an octave below,
        shares all its harmonics: its attack must not be taken for the tail)."""
        import librosa

        a = np.asarray(audio, dtype=np.float32)
        notes = reliable(analyse_notes(a))  # (an unreliable one's comb masks good ones)
        if not notes:
            raise TransferError("the style has no pitched note to sample (the note-based "
                                "methods, sampler, layered and layered-post, need a "
                                "monophonic recording of a pitched instrument or voice): "
                                "choose another style, or a job that needs no notes: "
                                "--job eq or --job paper")
        spec = short_stft(a, n_fft=2048, win_length=1024, hop_length=SEP_HOP)
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
            for i in range(j + 1, len(notes)):  # every note that starts within its tail
                if notes[i].onset * HOP - PRE >= hi:
                    break
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
            release = default_release()
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


def _into_tail(head: np.ndarray, tail: np.ndarray) -> np.ndarray:
    """``head`` continued by ``tail`` scaled to the level ``head`` ends at (at most +12 dB)
    and crossfaded over 20 ms (``head`` faded out where there is no tail)."""
    n_x = min(2 * HOP, len(head) // 2)
    if len(tail) < max(n_x, HOP) or n_x < 2:  # nothing to join: a 10 ms fade-out
        n = min(HOP, len(head))
        return np.concatenate([head[: len(head) - n], head[len(head) - n:] * np.linspace(1, 0, n)])
    before = float(np.sqrt(np.mean(head[-HOP:] ** 2)))
    after = float(np.sqrt(np.mean(tail[:HOP] ** 2)))
    tail = tail * (min(before / after, 4.0) if after > 0 else 0.0)
    xf = np.sin(np.linspace(0.0, np.pi / 2, n_x)) ** 2
    joint = head[-n_x:] * (1.0 - xf) + tail[:n_x] * xf
    return np.concatenate([head[:-n_x], joint, tail[n_x:]])


def _extended_from(sn: StyleNote, ratio: float, want: int) -> int | None:
    """Samples after the onset where :func:`_fit` starts continuing the style note ``sn``
    (shifted by ``ratio``) with pieces of itself to sound ``want`` samples (the first
    crossfade, just before its sustain's end); None where it is played as recorded (long
    enough, or its sustain too short to take pieces from)."""
    body = int(round(sn.body / ratio))
    attack = min(ATTACK, body // 2)
    return attack + extension_start(body - attack) if want > body >= attack + HOP else None


def _fit(y: np.ndarray, sn: StyleNote, ratio: float, want: int, pre: int,
         extended_from: int | None) -> np.ndarray:
    """The style note ``sn`` shifted by ``ratio`` (``y``: its onset at ``pre``) made to sound
    for ``want`` samples after its onset, then its tail: its sustain after the attack (after
    its first half, for a sustain shorter than two attacks) continued with pieces of itself at
    its level trend where the content note is longer (``extended_from``: the caller's
    :func:`_extended_from`, not None), or cut where it is shorter; the tail joins at the
    level reached."""
    body = int(round(sn.body / ratio))
    head, tail = y[: pre + body], y[pre + body:]
    attack = min(ATTACK, body // 2)
    if extended_from is not None:
        sustain = head[pre + attack:]
        longer = extend(sustain, want - attack, trend_db_per_sample(sustain))
        head = np.concatenate([head[: pre + attack], longer])
    elif want < body:
        head = head[: pre + want]
        if len(tail) < HOP:  # no tail (the clip's end): the continuation fades out
            cont = y[pre + want:]
            n_rel = min(int(RELEASE_S * SR), len(cont))
            return _faded_in(np.concatenate([head, cont[:n_rel] * np.linspace(1, 0, n_rel)]),
                             pre)
    return _faded_in(_into_tail(head, tail), pre)


def _faded_in(y: np.ndarray, pre: int) -> np.ndarray:
    """``y`` with its pre-roll (the previous note's end, ``pre`` samples) faded in."""
    y = y.copy()
    y[:pre] *= np.sin(np.linspace(0.0, np.pi / 2, pre)) ** 2
    return y


def play(content: np.ndarray, bank: StyleBank) -> np.ndarray:
    """The content's notes played with ``bank``'s notes; the content's length."""
    return play_with_extensions(content, bank)[0]


def play_with_extensions(content: np.ndarray,
                         bank: StyleBank) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """:func:`play`, and the spans (first and end sample) where a style note was continued
    with pieces of itself, not played as recorded (``layered`` trusts those spans less)."""
    extended: list[tuple[int, int]] = []
    n_out = len(content)
    out = np.zeros(n_out + SR, dtype=np.float64)
    written = 0  # out[written:] is still silence: nothing there to duck
    for note in analyse_notes(np.asarray(content, dtype=np.float32)):
        want = (note.voiced_end - note.onset) * HOP
        sn, ratio = bank.choose(note.f0, want)
        y = shift(sn.audio, ratio)
        pre = int(round(PRE / ratio))  # where the onset landed after resampling
        level = frame_rms(y[pre: pre + max(int(round(sn.body / ratio)), HOP)]).max()
        if level <= 0:
            continue
        if (first := _extended_from(sn, ratio, want)) is not None:
            extended.append((note.onset * HOP + first, note.onset * HOP + want))
        y = glide(_fit(y, sn, ratio, want, pre, first), slow_cents(note.contour, note.f0), pre)
        y = y * (note.peak / level)  # the style note's peak at the content note's
        start = note.onset * HOP - pre
        lo = max(start, 0)
        _duck(out[:written], note.onset * HOP, NEXT_NOTE_DB)
        seg = y[lo - start:][: len(out) - lo]
        out[lo: lo + len(seg)] += seg
        written = max(written, lo + len(seg))
    gated = _gate(out[:n_out], np.asarray(content, dtype=np.float64), GATE_DB)
    return gated.astype(np.float32), extended


def _duck(out: np.ndarray, at: int, db: float, fade: int = 5 * HOP) -> None:
    """Lower ``out`` (a view up to the last sample written) from sample ``at`` on by ``db``
    (over ``fade`` samples), in place: where a note starts, the tails of the notes before it
    ring on ``db`` quieter. Each style note
    brings up to TAIL_S of its own ring while the content note's voiced length already holds
    the content instrument's release, so unducked the overlapping tails sum louder than the
    style instrument's own (on every dev set LSD, dynamics and pitch improve with 6 dB, the
    judges improve or stay; 6-12 dB and 20-100 ms fades are within noise of each other;
    docs/quality.md)."""
    if db <= 0 or at >= len(out):
        return
    n = min(fade, len(out) - at)
    g = 10.0 ** (-db / 20.0)
    out[at: at + n] *= np.linspace(1.0, g, fade)[:n]
    out[at + n:] *= g


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
