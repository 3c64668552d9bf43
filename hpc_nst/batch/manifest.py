"""Reading and validating a CSV manifest of content/style pairs.

Columns: ``content`` and ``style`` (required), ``pair_id`` and ``target`` (optional),
per-row overrides of the job keys in :data:`OVERRIDE_COLUMNS` (an empty cell keeps the job's
value), and any other column as *metadata* (labels, splits, sources...): kept as text, carried
into the store and out through ``export``, never used by the computation. A column name one typo
away from a known one (``stlye``, ``seeds``) is refused with the suggestion, not taken as
metadata. Relative paths resolve against the manifest's folder. Every problem is collected, with
its CSV line number, before anything runs: file-level problems (unknown or missing columns, not
UTF-8, no rows) are always fatal; blank lines and lines starting with ``#`` are skipped;
a row with problems is invalid, and the run refuses to start
unless ``--skip-invalid`` records such rows as failed.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from hpc_nst.config import ConfigError, JobConfig, apply_overrides
from hpc_nst.errors import ManifestError  # noqa: F401 (re-exported)

REQUIRED_COLUMNS = ("content", "style")
PATH_COLUMNS = ("content", "style", "target")
#: Job keys a manifest row may override (short names of :data:`hpc_nst.config.ALIASES`).
OVERRIDE_COLUMNS = (
    "seed", "content_weight", "style_weight", "envelope_weight", "timbre_weight",
    "iterations", "learning_rate", "init", "griffin_lim_iterations",
)
KNOWN_COLUMNS = ("pair_id", *PATH_COLUMNS, *OVERRIDE_COLUMNS)
_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}$")
#: Metadata column names: printable, no leading/trailing space, at most 100 characters.
_META_RE = re.compile(r"^[^\s\x00-\x1f](?:[^\x00-\x1f]{0,98}[^\s\x00-\x1f])?$")


@dataclass(frozen=True)
class Pair:
    """One manifest row. ``error`` is set (and ``cfg`` may be None) for an invalid row."""

    line: int
    pair_id: str
    content: str  # as written in the manifest
    style: str
    target: str
    content_path: Path  # resolved
    style_path: Path
    target_path: Path | None
    overrides: tuple[tuple[str, str], ...]
    cfg: JobConfig | None
    digest: str  # effective-parameter digest ("" for an invalid row without config)
    content_samples: int  # at the job's sample rate, from the file header; -1 unknown
    style_samples: int
    error: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # (column, value) of the metadata columns
    only_missing_files: bool = False  # every problem of the row is an input file not there


@dataclass
class Manifest:
    """A validated manifest: every row (valid or not) in CSV order."""

    path: Path
    sha256: str
    pairs: list[Pair]
    problems: list[str] = field(default_factory=list)  # "line N: ..." for every invalid row
    metadata_columns: tuple[str, ...] = ()  # the manifest's extra columns, in CSV order

    @property
    def valid(self) -> list[Pair]:
        return [p for p in self.pairs if p.error is None]

    @property
    def invalid(self) -> list[Pair]:
        return [p for p in self.pairs if p.error is not None]


def row_problem(line: int, pair_id: str, error: str) -> str:
    """How a manifest's problem with one row reads (``Manifest.problems``)."""
    return f"line {line}: pair {pair_id}: {error}"


def default_pair_id(content: str, style: str, digest: str) -> str:
    """A stable id from the paths as written and the effective-parameter digest."""
    return hashlib.sha256(f"{content}\0{style}\0{digest}".encode()).hexdigest()[:16]


class _AudioInfo:
    """Header checks with a per-path cache (manifests repeat files a lot)."""

    def __init__(self, sample_rate: int, min_samples: int):
        self.sample_rate, self.min_samples = sample_rate, min_samples
        self.cache: dict[str, tuple[int, str | None]] = {}

    def __call__(self, path: str) -> tuple[int, str | None]:
        hit = self.cache.get(path)
        if hit is None:
            hit = self.cache[path] = self._probe(Path(path))
        return hit

    def _probe(self, path: Path) -> tuple[int, str | None]:
        if path.is_symlink() and not path.exists():
            return -1, (f"{path}: broken or looping symbolic link; point it (or the manifest) "
                        "at an audio file")
        if not path.exists():
            return -1, (f"{path}: file not found (relative paths resolve against the "
                        "manifest's folder); fix the path or copy the file there")
        if path.is_dir():
            return -1, f"{path}: is a directory, not an audio file; name a file inside it"
        if not path.is_file():  # a FIFO would block the reader forever
            return -1, (f"{path}: not a regular file (a pipe, socket or device); write the "
                        "audio to a file first")
        if path.stat().st_size == 0:
            return -1, f"{path}: empty file (0 bytes); re-export or remove the row"
        try:
            info = sf.info(str(path))
        except Exception as exc:  # soundfile raises several types
            return -1, (f"{path}: unreadable audio ({str(exc).strip() or type(exc).__name__});"
                        " convert it to WAV or FLAC, or remove the row")
        if info.frames <= 0:
            return -1, f"{path}: contains no samples (a header only); re-export or remove the row"
        n = math.ceil(info.frames * self.sample_rate / info.samplerate)
        if round(info.frames * self.sample_rate / info.samplerate) < self.min_samples:
            return n, (f"{path}: too short ({info.frames} samples at {info.samplerate} Hz; "
                       f"one STFT frame needs {self.min_samples} at {self.sample_rate} Hz)")
        return n, None


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ManifestError(path, [f"line {line}: not valid UTF-8 text"]) from None


def _header(path: Path, header: list[str] | None) -> list[str]:
    if not header or not any(h.strip() for h in header):
        raise ManifestError(path, ["line 1: no header row (need at least: content,style)"])
    cols = [h.strip() for h in header]
    problems = []
    for i, name in enumerate(cols):
        if cols.index(name) != i:
            problems.append(f"line 1: column {name!r} appears twice")
        elif name not in KNOWN_COLUMNS and (
                problem := metadata_name_problem(name, f"column {i + 1}")) is not None:
            problems.append(f"line 1: {problem}")
    for name in REQUIRED_COLUMNS:
        if name not in cols:
            problems.append(f"line 1: missing required column {name!r}")
    if len(cols) == 1 and any(sep in cols[0] for sep in ";\t|"):
        sep = next(c for c in ";\t|" if c in cols[0])
        problems.append(f"line 1: the header {cols[0]!r} looks separated by {sep!r}; a manifest "
                        "is comma-separated (content,style,...): save it as CSV with commas")
    if problems:
        raise ManifestError(path, problems)
    return cols


def metadata_name_problem(name: str, where: str) -> str | None:
    """Why ``name`` (not a known column; ``where``: which column, for the message) cannot be
    a metadata column, or None."""
    near = difflib.get_close_matches(name.lower(), KNOWN_COLUMNS, n=1, cutoff=0.8)
    if near:
        return (f"unknown column {name!r} ({where}): did you mean {near[0]!r}? Rename it "
                "(other columns are kept as metadata, but this one looks like a misspelt "
                "known column)")
    if not _META_RE.match(name):
        return (f"{where} has no usable name ({name!r}): give every column a name of 1-100 "
                "printable characters")
    return None


def read_manifest(path: str | Path, job: JobConfig, *, check_files: bool = True) -> Manifest:
    """Parse and validate ``path`` against ``job``; raises :class:`ManifestError` for fatal
    (file-level) problems and records row problems in ``Manifest.problems``.

    ``check_files=False`` skips every file check (lengths stay unknown); for benchmarks only.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, ["manifest file not found"])
    raw = path.read_bytes()
    text = _decode(path, raw)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        cols = _header(path, next(reader, None))
    except csv.Error as exc:
        raise ManifestError(path, [f"line 1: malformed CSV ({exc})"]) from None
    meta_cols = tuple(c for c in cols if c not in KNOWN_COLUMNS)
    base = os.path.dirname(os.path.abspath(path))
    stft = job.stft
    probe = _AudioInfo(stft.sample_rate, stft.win_length)
    configs: dict[tuple[tuple[str, str], ...], JobConfig | str] = {(): job}
    digests: dict[int, str] = {}  # id(cfg) -> digest: hashing a config is slow, configs repeat
    pairs: list[Pair] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    folded: dict[str, str] = {}  # casefolded id -> the first id spelled so
    line = 1
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ManifestError(path, [*problems, f"line {start}: malformed CSV ({exc})"]) from None
        line = start
        if not fields or all(not f.strip() for f in fields):
            continue  # blank line
        if fields[0].lstrip().startswith("#") and not (
                cols[0] in ("content", "style", "target")
                and os.path.isfile(os.path.join(base, fields[0].strip()))):
            continue  # comment line (not a file of that name: "#01 take.wav" is a pair)
        errs: list[str] = []
        if len(fields) != len(cols):
            errs.append(f"expected {len(cols)} fields ({','.join(cols)}), found {len(fields)}")
        row = {c: (fields[i].strip() if i < len(fields) else "") for i, c in enumerate(cols)}
        for name in REQUIRED_COLUMNS:
            if not row[name]:
                errs.append(f"empty {name!r}")
        overrides = tuple((k, row[k]) for k in OVERRIDE_COLUMNS if row.get(k))
        metadata = tuple((c, row[c]) for c in meta_cols)
        cfg = configs.get(overrides)
        if cfg is None:
            try:
                cfg = apply_overrides(job, dict(overrides))
            except ConfigError as exc:
                cfg = f"bad override: {exc}"
            configs[overrides] = cfg
        if isinstance(cfg, str):
            errs.append(cfg)
            cfg = None
        resolved: dict[str, Path | None] = {}
        samples = {"content": -1, "style": -1}
        missing = 0
        for name in PATH_COLUMNS:
            value = row.get(name, "")
            full = os.path.join(base, value) if value else ""
            resolved[name] = Path(full) if value else None
            if value and check_files:
                n, err = probe(full)
                if err:
                    errs.append(f"{name} {err}")
                    missing += err.startswith((f"{Path(full)}: file not found",  # (as
                                               f"{Path(full)}: broken or looping"))  # probed)
                if name in samples:
                    samples[name] = n
        digest = ""
        if cfg is not None:
            if id(cfg) not in digests:
                digests[id(cfg)] = cfg.digest()
            digest = digests[id(cfg)]
        pair_id = row.get("pair_id", "")
        explicit = bool(pair_id)
        if pair_id and not _ID_RE.match(pair_id):
            errs.append(f"pair_id {pair_id!r} is not a safe file name (letters, digits, "
                        "'_', '.', '+', '-'; at most 200 characters; starting with a letter, "
                        "a digit or '_')")
            pair_id = ""
        if not explicit and row["content"] and row["style"]:
            pair_id = default_pair_id(row["content"], row["style"], digest or f"line{line}")
        if pair_id in seen:
            what = "pair_id" if explicit else "pair (same content, style and parameters)"
            errs.append(f"duplicate {what} {pair_id!r}, first on line {seen[pair_id]}")
            pair_id = ""
        elif pair_id and folded.get(pair_id.casefold(), pair_id) != pair_id:
            other = folded[pair_id.casefold()]
            errs.append(f"pair_id {pair_id!r} differs from {other!r} (line {seen[other]}) only "
                        "in case: their exported files would overwrite each other on a "
                        "case-insensitive filesystem (macOS, Windows); rename one")
            pair_id = ""
        if pair_id:
            folded.setdefault(pair_id.casefold(), pair_id)
        if not pair_id:
            pair_id = f"invalid-line-{line}"
            while pair_id in seen:
                pair_id += "_"
        seen.setdefault(pair_id, line)
        error = "; ".join(errs) if errs else None
        if error:
            problems.append(row_problem(line, pair_id, error))
        pairs.append(Pair(
            line=line, pair_id=pair_id, content=row["content"], style=row["style"],
            target=row.get("target", ""), content_path=resolved["content"] or Path(base),
            style_path=resolved["style"] or Path(base), target_path=resolved["target"],
            overrides=overrides, cfg=cfg, digest=digest, content_samples=samples["content"],
            style_samples=samples["style"], error=error, metadata=metadata,
            only_missing_files=bool(errs) and missing == len(errs),
        ))
    if not pairs and not problems:
        raise ManifestError(path, [f"line {line}: no rows after the header"])
    return Manifest(path=path, sha256=hashlib.sha256(raw).hexdigest(), pairs=pairs,
                    problems=problems, metadata_columns=meta_cols)


def group_key(cfg: JobConfig) -> str:
    """Pairs with equal keys can share one batch (the seed is per pair)."""
    return cfg.with_seed(0).digest()
