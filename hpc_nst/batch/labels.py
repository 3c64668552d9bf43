"""Labels of the pairs of a store (``content_label`` / ``style_label``): from the manifest's own
columns, the label files beside it (``labels.csv``, ``<manifest stem>.labels.csv``) and the
``--labels`` CSVs of ``export`` and ``report``."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

from hpc_nst.batch import store as st
from hpc_nst.batch.reader import StoreInfo
from hpc_nst.errors import UsageError

LABEL_COLUMNS = ("content_label", "style_label")

log = logging.getLogger(__name__)


def check_label_files(paths: Sequence[Path]) -> None:
    """Refuse a ``--labels`` file that is not there (before any work)."""
    for path in paths:
        if not Path(path).is_file():
            raise UsageError(f"--labels {path}: file not found (a CSV of pair_id and "
                             "content_label and/or style_label)")


def label_sidecars(manifest: Path | None) -> list[Path]:
    """The label files found beside ``manifest``: ``labels.csv`` and ``<stem>.labels.csv``."""
    if manifest is None or not manifest.is_file():
        return []
    return [p for p in (manifest.parent / "labels.csv",
                        manifest.with_name(f"{manifest.stem}.labels.csv"))
            if p.is_file() and p != manifest]


def warn_if_manifest_edited(info: StoreInfo) -> bool:
    """Warn (and say True) where the store's manifest file changed since the store last ran
    (its recorded digest): its metadata and labels as the store holds them are not the
    file's; a rerun records the edits."""
    recorded = info.attrs.get("manifest", {}).get("sha256")
    if not recorded or info.manifest is None or not info.manifest.is_file() \
            or not info.metadata_columns:  # (no metadata kept: labels come from the file)
        return False
    if hashlib.sha256(info.manifest.read_bytes()).hexdigest() == recorded:
        return False
    log.warning("%s: edited since %s last ran: its labels and metadata are read as the store "
                "recorded them; rerun the hpc-nst run command that made the store (the same "
                "--job and --set) to record the edits", info.manifest, info.path)
    return True


def store_labels(info: StoreInfo, extra: list[Path] | None = None) -> dict[str, dict[str, str]]:
    """``pair_id -> {content_label, style_label}`` of a store's pairs: the manifest's label
    columns as the store recorded them (a rerun records edited cells), then the label files
    (:func:`read_labels`: beside the manifest, then ``extra``; later sources win). The
    manifest file itself is read only for a store of an earlier release (which records no
    metadata columns), so an edit not yet recorded by a rerun never half-applies."""
    warn_if_manifest_edited(info)
    root = st.open_root(info.path)
    ids = [str(x) for x in st.read_column(root, "pair")]
    held = [c for c in LABEL_COLUMNS if c in info.metadata_columns]
    out: dict[str, dict[str, str]] = {}
    if held:
        meta = st.read_column(root, "metadata")
        cols = [(info.metadata_columns.index(c), c) for c in held]
        for i, pid in enumerate(ids):
            entry = {c: v for j, c in cols if (v := str(meta[i, j]).strip())}
            if entry:
                out[pid] = entry
    # the manifest file is read only for a store that records no metadata columns (of an
    # earlier release, or a manifest without any): where it does, a label column missing
    # there was added to the file since (not recorded: a rerun says so), and read from the
    # file it would mix its edits with recorded cells
    found = read_labels(info.manifest, extra, set(ids) if extra else None,
                        skip=LABEL_COLUMNS if info.metadata_columns else ())
    for pid, got in found.items():
        out.setdefault(pid, {}).update(got)
    return out


def read_labels(manifest: Path | None, extra: list[Path] | None = None,
                pair_ids: set[str] | None = None,
                skip: Sequence[str] = ()) -> dict[str, dict[str, str]]:
    """``pair_id -> {content_label, style_label}`` from label columns of the manifest itself
    (but those in ``skip``), ``labels.csv`` and ``<manifest stem>.labels.csv`` beside it, and
    any ``extra`` label CSVs (``pair_id`` plus either label column; later sources win). With
    ``pair_ids`` (the store's), an ``extra`` file none of whose rows names one of them is
    warned about: a label file of another dataset labels nothing (one of a larger dataset is
    normal)."""
    given = list(extra or [])
    sources = [*label_sidecars(manifest), *given]
    if manifest is not None and manifest.is_file():
        sources.insert(0, manifest)
    out: dict[str, dict[str, str]] = {}
    for src in sources:
        with open(src, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            cols = [c for c in LABEL_COLUMNS if c in (reader.fieldnames or [])
                    and not (src == manifest and c in skip)]
            if "pair_id" not in (reader.fieldnames or []) or not cols:
                if src in given:  # named by the user: it must be a label file
                    missing = "no pair_id column" if cols else "no label columns"
                    raise UsageError(
                        f"--labels {src}: {missing} (its header is "
                        f"{','.join(reader.fieldnames or []) or 'empty'}); give a CSV with "
                        "pair_id and content_label and/or style_label")
                continue
            rows = matched = 0
            for row in reader:
                pid = (row.get("pair_id") or "").strip()
                if not pid or pid.startswith("#"):  # a comment line (as the manifest reader)
                    continue
                rows += 1
                matched += pair_ids is not None and pid in pair_ids
                entry = out.setdefault(pid, {})
                entry.update({c: v for c in cols if (v := (row.get(c) or "").strip())
                              or c not in entry})  # a blank cell never erases a label
            if pair_ids is not None and src in given and rows and not matched:
                log.warning("--labels %s: none of its %d row(s) names a pair of this store: "
                            "it labels nothing here (a label file of another dataset?)",
                            src, rows)
    return out
