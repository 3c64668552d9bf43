"""A labelled instrument dataset rendered from a General MIDI SoundFont.

Each GM program is one class. Per program, ``per_class`` clips of 2.56 s at 16 kHz are
planned: single notes (several velocities and durations), short phrases and dyads, across the
program's playable range. The split holds out whole pitches: a MIDI pitch belongs to exactly one
of ``train`` / ``val`` / ``test`` (by ``(pitch + seed) % 10``: residues 0 and 5 test, 3 val,
the rest train, so 70/10/20 %), and every clip uses pitches of one split only, so test notes
and test phrases were never heard in training.

Rendering is deterministic for a seed: a program's clips depend only on ``(seed, program)``.
All clips of one program are rendered in one FluidSynth call, spaced :data:`STRIDE_S` apart so
release tails and reverb die out between them, then cut and peak-normalised one by one.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpc_nst.audio.io import write_audio
from hpc_nst.data.soundfont import GM_PROGRAM_NAMES, PEAK, Note, playable_range, render_notes
from hpc_nst.fsutil import highest_missing

SAMPLE_RATE = 16000
CLIP_S = 2.56
STRIDE_S = 8.0
"""Spacing of consecutive clips inside one render (5.44 s for release tails and reverb to decay)."""
VELOCITIES = (32, 56, 80, 104, 127)
SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
#: Default classes: every melodic GM program except the percussive family (112-119) and the
#: sound effects (120-127) - 112 classes.
DEFAULT_PROGRAMS: tuple[int, ...] = tuple(range(112))
MANIFEST_COLUMNS = ("path", "label", "program", "pitch", "velocity", "split")


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render: its notes (seconds from the clip start) and manifest fields."""

    program: int
    index: int
    kind: str
    notes: tuple[Note, ...]
    split: str

    @property
    def pitch(self) -> int:
        """The first (lowest-starting) note's pitch."""
        return self.notes[0][0]

    @property
    def velocity(self) -> int:
        return max(n[3] for n in self.notes)


def pitch_split(pitch: int, seed: int = 0) -> str:
    """The split a MIDI pitch belongs to for ``seed`` (same for every program)."""
    residue = (pitch + seed) % 10
    if residue in (0, 5):
        return "test"
    if residue == 3:
        return "val"
    return "train"


def split_counts(per_class: int) -> dict[str, int]:
    """Clips per split for one class (test and val at least one each when per_class >= 3)."""
    n_test = max(1, round(per_class * SPLIT_FRACTIONS["test"])) if per_class >= 3 else 0
    n_val = max(1, round(per_class * SPLIT_FRACTIONS["val"])) if per_class >= 3 else 0
    return {"train": per_class - n_test - n_val, "val": n_val, "test": n_test}


def label_for(program: int) -> str:
    """Class label of a program: its GM name."""
    return GM_PROGRAM_NAMES[program]


def _slug(program: int) -> str:
    name = re.sub(r"[^a-z0-9]+", "_", GM_PROGRAM_NAMES[program].lower()).strip("_")
    return f"{program:03d}_{name}"


def _single(rng: np.random.Generator, pitches: np.ndarray) -> list[Note]:
    pitch = int(rng.choice(pitches))
    start = float(rng.uniform(0.0, 0.15))
    length = float(rng.uniform(0.4, 2.2))
    return [(pitch, start, start + length, int(rng.choice(VELOCITIES)))]


def _phrase(rng: np.random.Generator, pitches: np.ndarray) -> list[Note]:
    n = int(rng.integers(3, 7))
    idx = int(rng.integers(len(pitches)))
    onsets = np.sort(np.concatenate([rng.uniform(0.0, 0.1, 1), rng.uniform(0.1, 2.0, n - 1)]))
    legato = rng.random() < 0.5
    base_vel = int(rng.choice(VELOCITIES))
    notes: list[Note] = []
    for k in range(n):
        end_next = onsets[k + 1] if k + 1 < n else float(rng.uniform(onsets[k] + 0.25, 2.35))
        gap = float(end_next - onsets[k])
        length = max(0.08, gap * (1.0 if legato else rng.uniform(0.35, 0.8)))
        vel = int(np.clip(base_vel + rng.integers(-16, 17), 1, 127))
        notes.append((int(pitches[idx]), float(onsets[k]), float(onsets[k] + length), vel))
        idx = int(np.clip(idx + rng.choice([-2, -1, 1, 2]), 0, len(pitches) - 1))
    return notes


def _dyad(rng: np.random.Generator, pitches: np.ndarray) -> list[Note]:
    chosen = np.sort(rng.choice(pitches, size=min(2, len(pitches)), replace=False))
    start = float(rng.uniform(0.0, 0.15))
    end = start + float(rng.uniform(0.6, 2.2))
    vel = int(rng.choice(VELOCITIES))
    return [(int(p), start, end, vel) for p in chosen]


_KINDS: tuple[tuple[str, float, Callable[[np.random.Generator, np.ndarray], list[Note]]], ...] = (
    ("note", 0.6, _single),
    ("phrase", 0.25, _phrase),
    ("dyad", 0.15, _dyad),
)


def plan_program(program: int, per_class: int, seed: int = 0) -> list[ClipPlan]:
    """The clips of one program (deterministic for ``(seed, program)``)."""
    lo, hi = playable_range(program)
    all_pitches = np.arange(lo, hi + 1)
    rng = np.random.default_rng([seed, program])
    plans: list[ClipPlan] = []
    for split, count in split_counts(per_class).items():
        pitches = np.array([p for p in all_pitches if pitch_split(int(p), seed) == split])
        if count and pitches.size == 0:
            raise ValueError(f"program {program}: no {split} pitch in range {lo}..{hi}")
        probs = np.array([k[1] for k in _KINDS])
        for _ in range(count):
            name, _, make = _KINDS[int(rng.choice(len(_KINDS), p=probs))]
            notes = tuple(sorted(make(rng, pitches), key=lambda n: (n[1], n[0])))
            plans.append(ClipPlan(program, len(plans), name, notes, split))
    return plans


def render_program(
    plans: Sequence[ClipPlan], soundfont: str | Path | None = None
) -> list[np.ndarray]:
    """Render one program's clips in a single FluidSynth call; one peak-normalised array each."""
    if not plans:
        return []
    program = plans[0].program
    notes: list[Note] = []
    for k, plan in enumerate(plans):
        offset = k * STRIDE_S
        notes.extend((p, s + offset, e + offset, v) for p, s, e, v in plan.notes)
    total = (len(plans) - 1) * STRIDE_S + CLIP_S
    audio = render_notes(notes, program, SAMPLE_RATE, soundfont, duration=total)
    n_clip = int(round(CLIP_S * SAMPLE_RATE))
    clips = []
    for k in range(len(plans)):
        start = int(round(k * STRIDE_S * SAMPLE_RATE))
        clip = audio[start : start + n_clip].astype(np.float64)
        peak = float(np.abs(clip).max())
        clips.append((clip * (PEAK / peak) if peak > 2.0**-15 else clip).astype(np.float32))
    return clips


def render_gm_dataset(
    out_dir: str | Path,
    programs: Sequence[int] = DEFAULT_PROGRAMS,
    per_class: int = 100,
    seed: int = 0,
    soundfont: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Render the dataset into ``out_dir`` (``audio/<program>/NNNN.flac`` + ``manifest.csv``).

    Returns the manifest path. Paths in the manifest are relative to ``out_dir``. Silent clips
    (a preset without samples at some pitch) are left out and counted in the progress output.
    A folder that already holds a dataset (its ``manifest.csv``) is refused unless
    ``overwrite``, and then only one this function wrote: its clips that the new render does
    not write again are removed; a manifest of other files is never replaced. Clips are
    written into ``out_dir/.partial`` and moved into place once every program has rendered
    and the new manifest is written, so a render that fails or is stopped (Ctrl-C, SIGTERM:
    ``hpc-nst dataset render-gm``) while rendering leaves an earlier dataset as it was and no
    stray clips or folders it created behind.
    """
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    programs = list(dict.fromkeys(int(p) for p in programs))
    for p in programs:
        if not 0 <= p <= 127:
            raise ValueError(f"GM program must be in 0..127, got {p}")
    out = Path(out_dir)
    earlier = _earlier_clips(out)
    if earlier is not None and not overwrite:
        raise ValueError(f"{out} already holds a rendered dataset ({out / 'manifest.csv'}); "
                         "pass --overwrite to render a new one in its place, or choose "
                         "another folder")
    created = highest_missing(out)  # removed again if the render fails
    staging, manifest = out / ".partial", out / "manifest.csv"
    tmp = manifest.with_name(".manifest.csv.tmp")
    staging.mkdir(parents=True, exist_ok=True)
    try:
        rows, silent = _render_into(staging, programs, per_class, seed, soundfont, progress)
        with tmp.open("w", newline="") as fh:  # before a clip moves: a full disk fails here
            writer = csv.DictWriter(fh, fieldnames=MANIFEST_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        tmp.unlink(missing_ok=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    try:
        for row in rows:  # every program rendered: the clips move into place
            target = out / str(row["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(staging / str(row["path"]), target)  # (audio/ on another disk too)
        tmp.replace(manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        tmp.unlink(missing_ok=True)
    for rel in sorted((earlier or set()) - {str(r["path"]) for r in rows}):  # now orphans
        (out / rel).unlink(missing_ok=True)
    if progress is not None:
        note = f" ({silent} silent clips left out)" if silent else ""
        progress(f"wrote {len(rows)} clips and {manifest}{note}")
    return manifest


def _render_into(out: Path, programs: list[int], per_class: int, seed: int,
                 soundfont: str | Path | None, progress: Callable[[str], None] | None,
                 ) -> tuple[list[dict[str, object]], int]:
    """Render every program's clips under ``out``: (manifest rows, silent clips left out)."""
    rows: list[dict[str, object]] = []
    silent = 0
    for i, program in enumerate(programs):
        plans = plan_program(program, per_class, seed)
        clips = render_program(plans, soundfont)
        kept = 0
        for plan, clip in zip(plans, clips):
            if float(np.abs(clip).max()) < 1e-4:
                silent += 1
                continue
            rel = Path("audio") / _slug(program) / f"{plan.index:04d}_{plan.split}.flac"
            write_audio(out / rel, clip, SAMPLE_RATE)
            rows.append(
                {"path": rel.as_posix(), "label": label_for(program), "program": program,
                 "pitch": plan.pitch, "velocity": plan.velocity, "split": plan.split}
            )
            kept += 1
        if kept == 0:
            raise ValueError(f"program {program} ({label_for(program)}) rendered only silence")
        if progress is not None:
            progress(
                f"[{i + 1}/{len(programs)}] program {program:3d} {label_for(program)}: "
                f"{kept} clips"
            )
    return rows, silent


def _earlier_clips(out: Path) -> set[str] | None:
    """The clip paths (relative) of the dataset already in ``out``; None where there is
    none. A ``manifest.csv`` this function did not write (another header, or paths outside
    ``audio/``) is refused even with ``overwrite``: its files are a user's."""
    path = out / "manifest.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = tuple(reader.fieldnames or ())
        paths = [row.get("path") or "" for row in reader]
    if header != MANIFEST_COLUMNS or not all(
            p.startswith("audio/") and ".." not in p.split("/") for p in paths):
        raise ValueError(f"{path} is not a manifest written by hpc-nst dataset render-gm; "
                         "render into another folder (its files are left as they are)")
    return set(paths)
