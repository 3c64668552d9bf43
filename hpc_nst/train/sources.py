"""Training-data sources: CSV manifests and the NSynth layout, read into labelled examples.

Accepted inputs:

* a CSV manifest with at least ``path,label`` columns (paths relative to the CSV's folder or
  absolute). Optional ``split`` (``train``/``val``/``test``; ``valid``/``validation`` accepted)
  and ``pitch``. Without a split column, rows with a pitch get the held-out-pitch split of
  :func:`hpc_nst.data.gm_dataset.pitch_split`; other rows a hashed split of their path
  (10 % val, 10 % test). ``hpc-nst dataset render-gm`` writes such a manifest.
* an NSynth folder (``examples.json`` + ``audio/<note_str>.wav``) or its ``examples.json``;
  the label is an ``examples.json`` key (default ``instrument_family_str``) and the split
  holds out whole pitches.

Problems are reported as :class:`ManifestError` naming the file and row.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from hpc_nst.data.gm_dataset import pitch_split
from hpc_nst.errors import ManifestError  # noqa: F401 (re-exported)

SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "heldout": "test", "held-out": "test",
}
NSYNTH_LABEL_KEY = "instrument_family_str"
MAX_REPORTED = 10



@dataclass(frozen=True)
class Example:
    """One labelled audio file; ``where`` locates it in the manifest for error messages."""

    path: Path
    label: str
    split: str
    where: str
    pitch: int | None = None


def hashed_split(key: str) -> str:
    """A stable 80/10/10 train/val/test split from a string key."""
    bucket = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else "val" if bucket == 1 else "train"


def _raise_collected(errors: list[str], source: Path) -> None:
    if errors:
        extra = len(errors) - MAX_REPORTED
        more = f"\n  ... and {extra} more" if extra > 0 else ""
        raise ManifestError(
            f"{source}: {len(errors)} bad row(s):\n  " + "\n  ".join(errors[:MAX_REPORTED]) + more
        )


def _parse_pitch(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    value = float(text)
    if not value.is_integer() or not 0 <= value <= 127:
        raise ValueError(f"pitch must be a MIDI number 0..127, got {text!r}")
    return int(value)


def read_csv_manifest(path: Path) -> list[Example]:
    """Examples of a ``path,label[,split,pitch,...]`` CSV; every bad row is reported."""
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: unreadable manifest ({exc})") from None
    missing = [c for c in ("path", "label") if c not in fields]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(missing)} in header {fields or '(empty file)'}; "
            "a manifest needs at least 'path,label'"
        )
    has_split = "split" in fields
    base = path.parent
    examples: list[Example] = []
    errors: list[str] = []
    for line, row in enumerate(raw, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        where = f"{path.name} row {line}"
        file, label = row.get("path", ""), row.get("label", "")
        if not file:
            errors.append(f"row {line}: empty path")
            continue
        if not label:
            errors.append(f"row {line} ({file}): empty label")
            continue
        try:
            pitch = _parse_pitch(row.get("pitch", ""))
        except ValueError as exc:
            errors.append(f"row {line} ({file}): {exc}")
            continue
        if has_split:
            split = SPLIT_ALIASES.get(row.get("split", "").lower())
            if split is None:
                errors.append(
                    f"row {line} ({file}): split {row.get('split', '')!r} is not one of "
                    "train, val, test"
                )
                continue
        elif pitch is not None:
            split = pitch_split(pitch)
        else:
            split = hashed_split(file)
        audio = Path(file) if Path(file).is_absolute() else base / file
        if not audio.is_file():
            errors.append(f"row {line}: audio file not found: {audio}")
            continue
        examples.append(Example(audio, label, split, where, pitch))
    _raise_collected(errors, path)
    if not examples:
        raise ManifestError(f"{path}: no examples (the manifest has a header but no rows)")
    return examples


def read_nsynth(folder: Path, label_key: str = NSYNTH_LABEL_KEY) -> list[Example]:
    """Examples of an NSynth folder (``examples.json`` + ``audio/``), pitch-held-out split."""
    index = folder / "examples.json"
    audio_dir = folder / "audio"
    if not index.is_file():
        raise ManifestError(f"{folder}: not an NSynth folder (no examples.json)")
    if not audio_dir.is_dir():
        raise ManifestError(f"{folder}: NSynth folder without an audio/ directory")
    try:
        entries = json.loads(index.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{index}: unreadable examples.json ({exc})") from None
    if not isinstance(entries, dict) or not entries:
        raise ManifestError(f"{index}: expected a non-empty object of note_str -> attributes")
    examples: list[Example] = []
    errors: list[str] = []
    for note, attrs in sorted(entries.items()):
        if not isinstance(attrs, dict):
            errors.append(f"entry {note!r}: attributes are not an object")
            continue
        label = attrs.get(label_key)
        if label is None or str(label).strip() == "":
            errors.append(f"entry {note!r}: no {label_key!r}")
            continue
        try:
            pitch = _parse_pitch(str(attrs.get("pitch", "")))
        except ValueError as exc:
            errors.append(f"entry {note!r}: {exc}")
            continue
        audio = audio_dir / f"{note}.wav"
        if not audio.is_file():
            errors.append(f"entry {note!r}: audio file not found: {audio}")
            continue
        split = pitch_split(pitch) if pitch is not None else hashed_split(note)
        examples.append(Example(audio, str(label), split, f"examples.json entry {note!r}", pitch))
    _raise_collected(errors, index)
    return examples


def load_examples(source: str | Path, label_key: str = NSYNTH_LABEL_KEY) -> list[Example]:
    """Examples from a CSV manifest, an NSynth folder or an NSynth ``examples.json``."""
    source = Path(source)
    if source.is_dir():
        return read_nsynth(source, label_key)
    if source.name == "examples.json":
        return read_nsynth(source.parent, label_key)
    if not source.is_file():
        raise ManifestError(f"{source}: manifest not found")
    return read_csv_manifest(source)


def data_hash(examples: list[Example], root: Path) -> str:
    """Hash of the examples' relative paths, labels, splits and file sizes."""
    h = hashlib.sha256()
    for ex in examples:
        try:
            rel = ex.path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            rel = ex.path.as_posix()
        h.update(f"{rel}\t{ex.label}\t{ex.split}\t{ex.path.stat().st_size}\n".encode())
    return h.hexdigest()[:16]
