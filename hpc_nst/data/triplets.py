"""Timbre-transfer triplets with a ground truth, after Cífka et al. (2021)'s synthetic protocol.

Each triplet: a *content* melody played by GM instrument A, a *style* melody (other, independent
notes) played by instrument B, and the *target*: the content melody played by B. A and B are
two different programs of :data:`MELODIC_PROGRAMS`, drawn so that their playable ranges overlap
by at least an octave; the content melody lies in both ranges, the style melody in B's.

Melodies are monophonic random walks on a random major or natural-minor scale, with note
lengths of 0.16-0.64 s, occasional rests and velocities 70-110; every note ends at least
0.15 s before the clip does. Rendering uses :func:`hpc_nst.data.soundfont.render_notes`
(FluidR3_GM by default), 16 kHz, each file peak-normalised to 0.9, written as 16-bit FLAC.

Deterministic: triplet ``i`` of length group ``g`` depends only on ``(seed, g, i)``, so adding
triplets never changes existing ones. Output: ``OUT_DIR/audio/<pair_id>_{content,style,target}
.flac``, ``OUT_DIR/manifest.csv`` (``pair_id,content,style,target``: a manifest that
``hpc-nst run`` accepts) and ``OUT_DIR/labels.csv`` (``pair_id,content_label,style_label,
content_program,style_program,seconds``; labels are GM program names, the classifier's classes).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpc_nst.data.soundfont import GM_PROGRAM_NAMES, Note, playable_range

SAMPLE_RATE = 16000
#: Melodic GM programs with clearly different timbres (plucked, struck, bowed, blown, sung).
MELODIC_PROGRAMS: tuple[int, ...] = (
    0, 4, 6, 11, 12, 16, 21, 24, 25, 27, 40, 41, 42, 45, 46, 48, 52, 53, 56, 57, 60, 64, 65,
    66, 68, 70, 71, 73, 74, 75, 104, 105, 108,
)
DURATIONS_S = (0.16, 0.24, 0.32, 0.48, 0.64)
DURATION_WEIGHTS = (0.15, 0.25, 0.3, 0.2, 0.1)
SCALES = ((0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10))  # major, natural minor
TAIL_S = 0.15
MIN_OVERLAP = 12
MANIFEST_COLUMNS = ("pair_id", "content", "style", "target")
LABEL_COLUMNS = ("pair_id", "content_label", "style_label", "content_program", "style_program",
                 "seconds")


@dataclass(frozen=True)
class Triplet:
    """One planned triplet: programs and the two melodies (notes in seconds)."""

    pair_id: str
    seconds: float
    content_program: int
    style_program: int
    content_notes: tuple[Note, ...]
    style_notes: tuple[Note, ...]


def melody(rng: np.random.Generator, lo: int, hi: int, seconds: float) -> list[Note]:
    """A monophonic random-walk melody within MIDI pitches ``lo..hi`` lasting ``seconds``."""
    root = int(rng.integers(12))
    scale = SCALES[int(rng.integers(len(SCALES)))]
    span_lo = max(lo, (lo + hi) // 2 - 10)
    span_hi = min(hi, span_lo + 20)
    pitches = [p for p in range(span_lo, span_hi + 1) if (p - root) % 12 in scale]
    k = int(rng.integers(len(pitches) // 4, max(len(pitches) * 3 // 4, len(pitches) // 4 + 1)))
    notes: list[Note] = []
    t = float(rng.choice([0.0, 0.04, 0.08]))
    while True:
        dur = float(rng.choice(DURATIONS_S, p=DURATION_WEIGHTS))
        if t + dur > seconds - TAIL_S:
            break
        end = t + dur * float(rng.uniform(0.8, 1.0))
        notes.append((pitches[k], round(t, 4), round(end, 4), int(rng.integers(70, 111))))
        t += dur
        if rng.random() < 0.1:
            t += float(rng.choice([0.08, 0.16, 0.24]))
        step = int(rng.choice([-3, -2, -1, -1, 0, 1, 1, 2, 3]))
        k = k + step
        if not 0 <= k < len(pitches):  # reflect at the edges of the range
            k = k - 2 * step
        k = min(max(k, 0), len(pitches) - 1)
    if not notes:  # a clip too short for any listed duration: one note filling it
        notes.append((pitches[k], 0.0, max(0.05, seconds - TAIL_S), 90))
    return notes


def _overlap(a: int, b: int) -> tuple[int, int]:
    (la, ha), (lb, hb) = playable_range(a), playable_range(b)
    return max(la, lb), min(ha, hb)


def plan_triplet(seed: int, group: int, index: int, seconds: float,
                 programs: Sequence[int] = MELODIC_PROGRAMS) -> Triplet:
    """The triplet ``index`` of length group ``group`` (deterministic for ``seed``)."""
    rng = np.random.default_rng([seed, group, index])
    while True:
        a, b = (int(p) for p in rng.choice(list(programs), size=2, replace=False))
        lo, hi = _overlap(a, b)
        if hi - lo >= MIN_OVERLAP:
            break
    content = melody(rng, lo, hi, seconds)
    style_lo, style_hi = playable_range(b)
    style = melody(rng, max(style_lo, 36), min(style_hi, 96), seconds)
    tag = f"s{round(seconds * 100)}"
    return Triplet(f"{tag}-{index:03d}", seconds, a, b, tuple(content), tuple(style))


def render_triplets(
    out_dir: str | Path,
    counts: Sequence[int],
    seconds: Sequence[float],
    seed: int = 0,
    soundfont: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Render ``counts[g]`` triplets of ``seconds[g]`` each; returns the manifest path. A
    folder that already holds triplets (its ``manifest.csv``) is refused unless ``overwrite``;
    then the audio files of the earlier manifest that the new one does not list are removed
    (a folder whose rendering was cut short, without a manifest yet, is rendered again)."""
    from hpc_nst.audio.io import write_audio
    from hpc_nst.data.soundfont import check_soundfont, default_soundfont, render_notes

    if len(counts) != len(seconds):
        raise ValueError(f"give one count per length: {len(counts)} counts, {len(seconds)} "
                         "lengths")
    bad = [f"--count {c}" for c in counts if c < 0] + [
        f"--seconds {s:g}" for s in seconds if not 0.5 <= s <= 600]
    if bad:
        raise ValueError(f"{', '.join(bad)}: counts must be >= 0 and lengths between 0.5 and "
                         "600 s")
    if len({round(s * 100) for s in seconds}) != len(seconds):
        raise ValueError(f"lengths must differ (to 10 ms): {list(seconds)}")
    if sum(counts) == 0:
        raise ValueError("nothing to render: every count is 0")
    out = Path(out_dir)
    earlier = _earlier_audio(out)
    if earlier is not None and not overwrite:
        raise ValueError(f"{out} already holds triplets ({out / 'manifest.csv'}); pass "
                         "--overwrite to render new ones in their place, or choose another "
                         "folder")
    sf2 = (check_soundfont(Path(soundfont), "--soundfont") if soundfont is not None
           else default_soundfont())
    if earlier is not None:  # a render cut short leaves no manifest over mixed audio
        for name in ("manifest.csv", "labels.csv"):
            (out / name).unlink(missing_ok=True)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows, labels = [], []
    for g, (count, secs) in enumerate(zip(counts, seconds)):
        for i in range(count):
            t = plan_triplet(seed, g, i, secs)
            paths = {}
            for role, notes, program in (("content", t.content_notes, t.content_program),
                                         ("style", t.style_notes, t.style_program),
                                         ("target", t.content_notes, t.style_program)):
                audio = render_notes(notes, program, SAMPLE_RATE, sf2, duration=secs)
                rel = f"audio/{t.pair_id}_{role}.flac"
                write_audio(out / rel, audio, SAMPLE_RATE)
                paths[role] = rel
            rows.append([t.pair_id, paths["content"], paths["style"], paths["target"]])
            labels.append([t.pair_id, GM_PROGRAM_NAMES[t.content_program],
                           GM_PROGRAM_NAMES[t.style_program], t.content_program,
                           t.style_program, secs])
            if progress is not None:
                progress(f"{t.pair_id}: {GM_PROGRAM_NAMES[t.content_program]} -> "
                         f"{GM_PROGRAM_NAMES[t.style_program]}")
    _write_csv(out / "labels.csv", LABEL_COLUMNS, labels)
    manifest = _write_csv(out / "manifest.csv", MANIFEST_COLUMNS, rows)
    kept = {p for row in rows for p in row[1:]}
    for rel in sorted((earlier or set()) - kept):  # the earlier triplets' audio, now orphans
        (out / rel).unlink(missing_ok=True)
    return manifest


def _earlier_audio(out: Path) -> set[str] | None:
    """The audio paths (relative) of the triplets already in ``out``; None where it holds
    none. A ``manifest.csv`` this generator did not write (another header, or files other than
    ``audio/<pair_id>_{content,style,target}.flac``) is refused even with ``overwrite``: its
    files are a user's, never removed."""
    path = out / "manifest.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        rows = list(reader)
    ours = header == list(MANIFEST_COLUMNS) and all(
        len(row) == len(MANIFEST_COLUMNS) and all(
            row[k + 1] == f"audio/{row[0]}_{role}.flac"
            for k, role in enumerate(("content", "style", "target"))) for row in rows)
    if not ours:
        raise ValueError(f"{path} is not a manifest written by hpc-nst dataset triplets; "
                         "render into another folder (its files are left as they are)")
    return {p for row in rows for p in row[1:]}


def _write_csv(path: Path, header: Sequence[str], rows: list[list[object]]) -> Path:
    from hpc_nst.fsutil import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)

    atomic_write(path, write)
    return path
