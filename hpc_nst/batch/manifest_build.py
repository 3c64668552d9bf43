"""Building a manifest from folders or globs of audio (``hpc-nst manifest``).

Content and style files are found under one or more roots (a folder, searched recursively or
not, or a glob pattern), filtered by extension and sorted by path, so the same folders always
give the same manifest. They are paired in one of three modes:

- ``cross``: every content file with every style file (content-major order);
- ``zip``: the i-th content file with the i-th style file (equal counts required);
- ``sample``: ``n`` distinct pairs of the cross product, drawn with a seeded generator and
  balanced over styles (over style labels when there are labels, else over style files): every
  style gets ``n // styles`` or one more, each without repeating a content file where it can.

Each row gets a deterministic ``pair_id`` (readable stems plus a hash of the two paths
under their roots, so the ids do not change when the library moves), paths relative to the
manifest's folder (so the folder tree can move as a whole), ``content_label``/``style_label``
from the first sub-folder under the root (``--labels-from-dirs``) and any columns of side CSVs
keyed by file (``--labels``: a ``path`` column, relative to that CSV's folder, plus columns that
become ``content_<col>``/``style_<col>``; a column named like a per-row job key, e.g.
``style_weight``, is that pair's override instead, the style file's value winning), and constant
job overrides (``--override seed=3``) for every row.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hpc_nst.batch.manifest import KNOWN_COLUMNS, OVERRIDE_COLUMNS, metadata_name_problem
from hpc_nst.config import ConfigError, apply_overrides, load_job
from hpc_nst.errors import ManifestError

log = logging.getLogger(__name__)
MODES = ("cross", "zip", "sample")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus")
_SLUG = re.compile(r"[^A-Za-z0-9_.+-]+")


@dataclass(frozen=True)
class AudioFile:
    """One audio file found under a root, with the label its folder gives it."""

    path: Path  # absolute
    root: Path  # the folder it was found under (for labels)
    label: str  # first sub-folder under ``root`` ('' for a file directly in it)

    @property
    def name(self) -> str:
        """``<root folder name>/<path under the root>``: what the pair id hashes, independent of
        where the manifest is written or the library is mounted."""
        rel = (self.path.relative_to(self.root) if self.path.is_relative_to(self.root)
               else Path(self.path.name))
        return f"{self.root.name}/{rel.as_posix()}"


@dataclass(frozen=True)
class BuildOptions:
    """What ``hpc-nst manifest`` was asked for (validated by :func:`build_rows`)."""

    mode: str = "cross"
    n: int = 0  # pairs, for mode=sample
    seed: int = 0
    labels_from_dirs: bool = False
    overrides: tuple[tuple[str, str], ...] = ()
    side_labels: tuple[Path, ...] = ()
    extra_columns: tuple[tuple[str, str], ...] = field(default=())  # constant metadata


def find_audio(spec: str, recursive: bool = True,
               extensions: Sequence[str] = AUDIO_EXTENSIONS) -> list[AudioFile]:
    """The audio files of a folder (recursively or not) or a glob pattern, sorted by path."""
    exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    path = Path(spec)
    if path.is_dir():
        root = path.resolve()
        it = root.rglob("*") if recursive else root.glob("*")
        found = [p for p in it if p.is_file() and p.suffix.lower() in exts
                 and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    elif glob.has_magic(spec):
        root = Path(spec.split("*")[0].split("?")[0].split("[")[0] or ".")
        root = Path(os.path.abspath(root if root.is_dir() else root.parent))
        # (absolute, not resolved: a symlinked file keeps its folder, hence its label, as in
        # the folder form, which does not resolve the files it finds under root either)
        found = [Path(os.path.abspath(p)) for p in glob.glob(spec, recursive=recursive)
                 if Path(p).is_file() and Path(p).suffix.lower() in exts
                 and not Path(p).name.startswith(".")]
    elif path.is_file():
        root, found = path.resolve().parent, [path.resolve()]
    else:
        raise ManifestError(spec, ["no such folder, file or glob pattern"])
    if not found:
        raise ManifestError(spec, [f"no audio files ({', '.join(exts)}) found"
                                   + ("" if recursive or not path.is_dir()
                                      else "; sub-folders not searched (add --recursive)")])
    out = []
    for p in sorted(set(found)):
        rel = p.relative_to(root) if p.is_relative_to(root) else Path(p.name)
        out.append(AudioFile(p, root, rel.parts[0] if len(rel.parts) > 1 else ""))
    return out


def unique_files(files: list[AudioFile], option: str) -> list[AudioFile]:
    """``files`` with each audio file once (by its folder's resolved path), the first spec's
    entry kept: overlapping specs (a folder and its sub-folder, two globs) listed a file twice,
    under different pair ids and labels, so one pair was computed twice and could fall on
    both sides of a train/test split."""
    seen: dict[Path, AudioFile] = {}
    for f in files:  # (a symlinked file stays apart: its own folder gives it its label)
        seen.setdefault(f.path.parent.resolve() / f.path.name, f)
    if len(seen) < len(files):
        log.warning("%d file(s) named by more than one %s (overlapping folders or patterns), "
                    "each kept once, under the first that named it", len(files) - len(seen),
                    option)
    return list(seen.values())


def pair_id(content_rel: str, style_rel: str) -> str:
    """``<content stem>__<style stem>-<8 hex>``: readable, unique, stable for the same paths."""
    digest = hashlib.sha256(f"{content_rel}\0{style_rel}".encode()).hexdigest()[:8]
    stem = lambda p: _SLUG.sub("_", Path(p).stem).strip("._+-")[:60] or "x"  # noqa: E731
    return f"{stem(content_rel)}__{stem(style_rel)}-{digest}"


def _pairs(contents: list[AudioFile], styles: list[AudioFile],
           opts: BuildOptions) -> list[tuple[AudioFile, AudioFile]]:
    if opts.mode == "cross":
        return [(c, s) for c in contents for s in styles]
    if opts.mode == "zip":
        if len(contents) != len(styles):
            raise ManifestError("--mode zip", [
                f"{len(contents)} content files but {len(styles)} style files; zip pairs "
                "them one to one (use --mode cross or sample for other counts)"])
        return list(zip(contents, styles))
    total = len(contents) * len(styles)
    if not 0 < opts.n <= total:
        raise ManifestError("--mode sample", [
            f"--pairs {opts.n}: must be 1..{total} (content x style files)"])
    rng = np.random.default_rng(opts.seed)
    groups: dict[str, list[int]] = {}
    for k, s in enumerate(styles):
        groups.setdefault(s.label if opts.labels_from_dirs and s.label else str(s.path),
                          []).append(k)
    names = sorted(groups)
    order = [names[i] for i in rng.permutation(len(names))]
    share = {g: opts.n // len(names) + (i < opts.n % len(names)) for i, g in enumerate(order)}
    chosen: list[tuple[int, int]] = []
    priority = rng.permutation(len(contents)).tolist()
    uses = [0] * len(contents)
    taken: set[tuple[int, int]] = set()
    for g in names:
        cells = [(c, s) for s in groups[g] for c in range(len(contents))]
        if share[g] > len(cells):
            raise ManifestError("--mode sample", [
                f"style group {g!r} has {len(cells)} possible pairs, {share[g]} asked: ask "
                f"for at most {len(names) * min(len(v) * len(contents) for v in groups.values())}"
                " pairs for an even balance"])
        # Style files in turn; each takes the least-used content it has not had yet
        # (ties broken by a seeded random priority): contents spread as evenly as they can.
        picks: list[tuple[int, int]] = []
        while len(picks) < share[g]:
            for s in groups[g]:
                free = [c for c in range(len(contents)) if (c, s) not in taken]
                if len(picks) < share[g] and free:
                    c = min(free, key=lambda c: (uses[c], priority[c]))
                    uses[c] += 1
                    taken.add((c, s))
                    picks.append((c, s))
        chosen.extend(picks)
    chosen.sort()
    return [(contents[c], styles[s]) for c, s in chosen]


def _side_labels(paths: Sequence[Path]) -> dict[Path, dict[str, str]]:
    """``absolute file -> {column: value}`` from side CSVs with a ``path`` column."""
    out: dict[Path, dict[str, str]] = {}
    for src in paths:
        if not src.is_file():
            raise ManifestError(src, ["labels file not found"])
        with open(src, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = [c.strip() for c in reader.fieldnames or []]
            if "path" not in cols or len(cols) < 2:
                raise ManifestError(src, ["line 1: a labels file needs a 'path' column and at "
                                          "least one label column"])
            for line, row in enumerate(reader, start=2):
                if None in row:  # csv's restkey: more fields than the header names
                    raise ManifestError(src, [f"line {line}: {len(cols) + len(row[None])} "
                                              f"fields, the header names {len(cols)}"])
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                if not row.get("path"):
                    raise ManifestError(src, [f"line {line}: empty 'path'"])
                key = (src.resolve().parent / row.pop("path")).resolve()
                out.setdefault(key, {}).update(row)
    return out


def build_rows(contents: list[AudioFile], styles: list[AudioFile], out_dir: Path,
               opts: BuildOptions) -> tuple[list[str], list[dict[str, str]]]:
    """The manifest's header and rows (paths relative to ``out_dir``)."""
    if opts.mode not in MODES:
        raise ManifestError("--mode", [f"{opts.mode!r}: must be one of {', '.join(MODES)}"])
    defaults = load_job() if opts.overrides else None
    for key, value in opts.overrides:
        if key not in OVERRIDE_COLUMNS:
            raise ManifestError("--override", [
                f"{key!r} is not a per-row key; allowed: {', '.join(OVERRIDE_COLUMNS)}"])
        try:  # the value's type and range now, not a failed row per pair at run time
            apply_overrides(defaults, {key: value})
        except ConfigError as exc:
            raise ManifestError("--override", [f"{key}={value}: {exc}"]) from None
    side = _side_labels(opts.side_labels)
    if side:  # a path that names none of the files found labels nothing: say so
        found = {f.path for f in (*contents, *styles)}
        unmatched = sorted(str(k) for k in side if k not in found)
        unlabelled = sum(f.path not in side for f in (*contents, *styles))
        if unmatched:
            log.warning("%d path(s) of the labels file(s) match no file found (first: %s); "
                        "paths are relative to the labels file and case-sensitive",
                        len(unmatched), ", ".join(unmatched[:3]))
        if unlabelled:
            log.warning("%d file(s) found have no row in the labels file(s): their label "
                        "columns are empty", unlabelled)
    # Side-CSV columns named like a per-row job key (seed, style_weight, ...) are overrides of
    # that pair (the style file's value wins over the content file's); the others are labels.
    present = {role: sorted({c for f in files for c in side.get(f.path, {})
                             if c not in OVERRIDE_COLUMNS})
               for role, files in (("content", contents), ("style", styles))}
    side_overrides = sorted({c for v in side.values() for c in v if c in OVERRIDE_COLUMNS})
    out_dir = out_dir.resolve()
    rel = lambda p: os.path.relpath(p, out_dir)  # noqa: E731
    header = ["pair_id", "content", "style"]
    if opts.labels_from_dirs:
        header += ["content_label", "style_label"]
    header += [f"{role}_{c}" for role in ("content", "style") for c in present[role]
               if f"{role}_{c}" not in header]
    header += [k for k, _ in opts.overrides if k not in side_overrides] + side_overrides
    for key, _ in opts.extra_columns:
        problem = (f"{key!r} is a column this manifest already has (paths, labels or "
                   "overrides); give the constant column another name"
                   if key in header or key in KNOWN_COLUMNS
                   else metadata_name_problem(key, f"--column {key}="))
        if problem:
            raise ManifestError("--column", [problem])
    header += [k for k, _ in opts.extra_columns]
    rows = []
    for c, s in _pairs(contents, styles, opts):
        row = {"pair_id": pair_id(c.name, s.name), "content": rel(c.path),
               "style": rel(s.path)}
        if opts.labels_from_dirs:
            row.update(content_label=c.label, style_label=s.label)
        row.update(dict(opts.overrides))
        for role, f in (("content", c), ("style", s)):
            for col, value in side.get(f.path, {}).items():
                if col in OVERRIDE_COLUMNS:
                    if value:
                        row[col] = value
                else:
                    row[f"{role}_{col}"] = value
        row.update(dict(opts.extra_columns))
        rows.append({h: row.get(h, "") for h in header})
    seen: dict[str, str] = {}
    for row in rows:
        first = seen.setdefault(row["pair_id"], f"{row['content']} + {row['style']}")
        if first != f"{row['content']} + {row['style']}":
            raise ManifestError("--content/--style", [
                f"pair id {row['pair_id']} would name two pairs ({first}; {row['content']} + "
                f"{row['style']}): two roots with the same folder name hold the same file "
                "names; give the roots distinct folder names"])
    return header, rows


def write_manifest(path: Path, header: list[str], rows: list[dict[str, str]],
                   overwrite: bool = False) -> None:
    """Write the CSV atomically; refuse to replace an existing file unless ``overwrite``."""
    if path.exists() and not overwrite:
        raise ManifestError(path, ["already exists; use --overwrite to replace it"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
