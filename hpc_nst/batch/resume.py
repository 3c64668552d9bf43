"""Resuming: each store row matched to its manifest row, and rows corrected in place.

A rerun's manifest must hold the store's pairs, with the same inputs and parameters
(:func:`match_manifest`); the one exception is a row that was invalid and never ran, which
may be corrected in the manifest and is then written back into the store
(:func:`refresh_rows`) to run with ``--retry-failed``; a changed ``target`` (read by the
report only) is written back for any pair (:func:`refresh_targets`), and so are changed
metadata cells (labels, a split: :func:`refresh_metadata`), which the computation never reads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TextIO

import numpy as np
import zarr

from hpc_nst.batch.labels import LABEL_COLUMNS
from hpc_nst.batch.locations import input_stamp, stamps_differ
from hpc_nst.batch.manifest import Manifest, row_problem
from hpc_nst.batch.store import (
    DONE,
    FAILED,
    PENDING,
    has,
    read_column,
)
from hpc_nst.batch.store_creation import record_capacity
from hpc_nst.config import JobConfig
from hpc_nst.errors import StoreError

log = logging.getLogger(__name__)


def match_manifest(path: Path, root: zarr.Group, manifest: Manifest,
                   fixes: list[int] | None = None) -> list[int]:
    """Map each store row to its manifest row, refusing a manifest with other pairs.

    Returns, for store index i, the position in ``manifest.pairs`` of the same pair. With a
    ``fixes`` list, a row that was invalid and never ran (failed, no attempt) may have been
    corrected in the manifest (other inputs or parameters, the same id): its store index is
    appended there (see :func:`refresh_rows`) instead of refusing the manifest.
    """
    ids = read_column(root, "pair")
    digests = read_column(root, "params_digest")
    contents, styles = read_column(root, "content_path"), read_column(root, "style_path")
    never_ran = (read_column(root, "status") == FAILED) & (read_column(root, "attempts") == 0)
    where = {p.pair_id: k for k, p in enumerate(manifest.pairs)}
    missing = [str(i) for i in ids if i not in where]
    stored = set(ids.tolist())
    added = [f"{p.pair_id} (line {p.line})" for p in manifest.pairs if p.pair_id not in stored]
    changed = []
    for i, pid in enumerate(ids):
        k = where.get(pid)
        if k is None:
            continue
        p = manifest.pairs[k]
        if (p.digest, p.content, p.style) != (digests[i], contents[i], styles[i]):
            if fixes is not None and never_ran[i]:
                fixes.append(i)
            else:
                changed.append(f"{pid} (line {p.line})")
    if missing or added or changed:
        parts = []
        for label, items in (("in the manifest but not in the store", added),
                             ("in the store but not in the manifest", missing),
                             ("with other inputs or parameters than in the store", changed)):
            if items:
                parts.append(f"{len(items)} pair(s) {label}: {', '.join(items[:5])}"
                             + (" ..." if len(items) > 5 else ""))
        raise StoreError(f"{path} was created from a different manifest:\n  "
                         + "\n  ".join(parts) + "\nWrite to a new store with -o NEW.zarr"
                         + (" (rows that were invalid and never ran may be corrected in "
                            "place)." if changed else "."))
    return [where[pid] for pid in ids]


def refresh_rows(path: Path, root: zarr.Group, manifest: Manifest, where: list[int],
                 fixes: list[int], cfg: JobConfig) -> int:
    """Write the corrected manifest rows ``fixes`` (store indices; see match_manifest) into
    the store's per-pair inputs and parameters, each array once; they run with
    ``--retry-failed``. Everything is checked before anything is written: a corrected row
    needing loss curves or more loss records than the store holds is refused. Returns how
    many corrected rows are valid now (an invalid one stays failed, with its new problem)."""
    if not fixes:
        return 0
    from hpc_nst.engine.methods import get_method

    terms = set(read_column(root, "term").tolist())
    records = int(root["loss"].shape[2])
    for i in fixes:
        p = manifest.pairs[where[i]]
        if p.cfg is None:
            continue
        missing = set(get_method(p.cfg.method).loss_terms(p.cfg)) - terms
        if missing:
            raise StoreError(f"{path}: the corrected row {p.pair_id} (line {p.line}) records "
                             f"loss curves the store has no place for ({', '.join(sorted(missing))}"
                             "; a weight column switching a term on?); nothing was changed: "
                             "write to a new store with -o NEW.zarr")
        if record_capacity(p.cfg) > records:
            raise StoreError(f"{path}: the corrected row {p.pair_id} (line {p.line}) records "
                             f"{record_capacity(p.cfg)} loss values, the store holds {records} "
                             "(more iterations than any pair it was made with); nothing was "
                             "changed: write to a new store with -o NEW.zarr")
    columns = {name: read_column(root, name) for name in
               ("row", "content_path", "style_path", "target_path", "params_digest", "seed",
                "params")}
    same_meta = bool(manifest.metadata_columns) and list(manifest.metadata_columns) == [
        str(c) for c in (read_column(root, "metadata_column") if has(root, "metadata_column")
                         else [])]
    meta = read_column(root, "metadata") if same_meta else None
    for i in fixes:
        p = manifest.pairs[where[i]]
        for name, value in (("row", p.line), ("content_path", p.content),
                            ("style_path", p.style), ("target_path", p.target),
                            ("params_digest", p.digest),
                            ("seed", p.cfg.optim.seed if p.cfg else -1),
                            ("params", json.dumps(p.cfg.record(), sort_keys=True, default=list)
                             if p.cfg else "")):
            columns[name][i] = value
        if meta is not None:
            meta[i] = [v for _, v in p.metadata]
        log.info("%s: pair %s corrected in the manifest (line %d): inputs and parameters "
                 "updated", path, p.pair_id, p.line)
    for name, values in columns.items():
        root[name][...] = values
    if meta is not None:
        root["metadata"][...] = meta
    return sum(manifest.pairs[where[i]].error is None for i in fixes)


def refresh_targets(path: Path, root: zarr.Group, manifest: Manifest,
                    where: list[int]) -> list[str]:
    """Write the manifest's ``target`` of every pair whose target changed since the store
    recorded it (the ids); any status: a target is read by the report only, never by the
    computation, so a done pair keeps its output and the report measures it against the
    new target."""
    stored = read_column(root, "target_path")
    now = np.array([manifest.pairs[k].target for k in where], dtype=object)
    changed = np.array([str(a) != str(b) for a, b in zip(stored, now)], dtype=bool)
    if not changed.any():
        return []
    root["target_path"][...] = np.where(changed, now, stored).astype(object)
    ids = [str(x) for x in read_column(root, "pair")[changed]]
    log.info("%s: the target of %d pair(s) changed in the manifest, recorded: %s%s", path,
             len(ids), ", ".join(ids[:5]), " ..." if len(ids) > 5 else "")
    return ids


def refresh_metadata(path: Path, root: zarr.Group, manifest: Manifest, where: list[int],
                     out: TextIO | None = None) -> list[str]:
    """Write the manifest's metadata cells (labels, a split, ...) of every pair whose cells
    changed since the store recorded them, in the columns both have; any status, since the
    computation never reads them (report and export read the store's). Returns the ids (said
    on ``out``); a manifest column the store has no place for (added since it was made) is
    named in a warning."""
    stored_cols = ([str(c) for c in read_column(root, "metadata_column")]
                   if has(root, "metadata_column") else [])
    new_cols = [c for c in manifest.metadata_columns if c not in stored_cols
                and (stored_cols or c not in LABEL_COLUMNS)]  # (a store keeping no metadata
    if new_cols:  # has its labels read from the manifest file: not lost)
        log.warning("%s: the manifest has column(s) the store was made without (%s): not "
                    "recorded, so report and export do not see them; write to a new store to "
                    "keep them (labels also come from a --labels file)", path,
                    ", ".join(new_cols))
    shared = [(j, c) for j, c in enumerate(stored_cols) if c in manifest.metadata_columns]
    if not shared:
        return []
    meta = read_column(root, "metadata")
    changed = np.zeros(len(where), dtype=bool)
    for i, k in enumerate(where):
        cells = dict(manifest.pairs[k].metadata)
        for j, c in shared:
            if str(meta[i, j]) != cells.get(c, ""):
                meta[i, j] = cells.get(c, "")
                changed[i] = True
    if not changed.any():
        return []
    root["metadata"][...] = meta
    ids = [str(x) for x in read_column(root, "pair")[changed]]
    log.info("%s: the metadata of %d pair(s) changed in the manifest, recorded: %s%s", path,
             len(ids), ", ".join(ids[:5]), " ..." if len(ids) > 5 else "")
    if out is not None:
        print(f"{path}: the metadata (labels, ...) of {len(ids)} pair(s) changed in the "
              "manifest: recorded (report and export read it)", file=out)
    return ids


def changed_mask(root: zarr.Group, manifest: Manifest,
                 where: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(done pairs whose content or style file changed since their stamp, the stamps now, the
    stored ones); None for a store of an earlier release (no stamps). A file missing now is
    not counted as changed (a run cannot use it either: the pair is refused for that)."""
    if not has(root, "input_stamp"):
        return None
    stamps = read_column(root, "input_stamp")
    status = read_column(root, "status")
    seen: dict[Path, str] = {}
    now = np.array([input_stamp(manifest.pairs[k], seen) for k in where], dtype=object)

    done_changed = np.array([s == DONE and stamps_differ(o, n)
                             for s, o, n in zip(status, stamps, now)], dtype=bool)
    return done_changed, now, stamps


def changed_inputs(path: Path, root: zarr.Group, manifest: Manifest, where: list[int],
                   recompute: bool) -> list[str]:
    """Done pairs whose input files changed since they were computed (their ids, from
    :func:`changed_mask`); with ``recompute`` they are set pending, to run again on the new
    files. Every pair not done has its stamp brought up to date (it runs on the files as they
    are now). A store of an earlier release has no stamps: nothing can be checked (said when
    ``recompute`` asks for it)."""
    found = changed_mask(root, manifest, where)
    if found is None:
        if recompute:
            log.warning("%s: made by an earlier release, it has no input stamps: changed "
                        "input files cannot be found (--recompute-changed does nothing)", path)
        return []
    done_changed, now, stamps = found
    status = read_column(root, "status")
    ids = [str(x) for x in read_column(root, "pair")[done_changed]]
    update = (status != DONE) & (now != stamps)
    if recompute and done_changed.any():
        error = read_column(root, "error")
        error[done_changed] = "reset by --recompute-changed: its input files changed"
        root["error"][...] = error
        root["status"][...] = np.where(done_changed, PENDING, status).astype(status.dtype)
        update |= done_changed
        log.info("%s: %d done pair(s) set pending: their inputs changed", path, len(ids))
    if update.any():
        root["input_stamp"][...] = np.where(update, now, stamps).astype(object)
    return ids


def follow_moved_manifest(path: Path, root: zarr.Group, manifest: Manifest, where: list[int],
                          out: TextIO, quiet: bool, recompute: bool) -> bool:
    """The same manifest (same pairs) resumed from another place (the dataset folder moved
    or mounted elsewhere): record where it is now, so that report and export find its inputs
    and labels.csv (they read the recorded path). Not where it names other files than those
    the done pairs were computed from (another dataset with the same pair ids and paths:
    report and export would then pair those outputs with the other dataset's targets and
    labels), unless --recompute-changed computes them again from these. Returns whether the
    manifest is the store's now (False where it was declined: then its targets and metadata
    are not recorded either)."""
    from hpc_nst.batch.conventions import root_attrs, set_attrs
    from hpc_nst.batch.store import consolidate

    recorded = root_attrs(root).get("manifest", {})
    now = str(manifest.path.resolve())
    if recorded.get("path") in (None, now):
        return True
    found = changed_mask(root, manifest, where)
    if found is not None and found[0].any() and not recompute:
        log.warning("%s: %s names other input files than the %d done pair(s) were computed "
                    "from: not recorded as the store's manifest (report and export keep "
                    "reading %s); if they are the same files moved, or to compute those pairs "
                    "again from these, rerun with --recompute-changed", path, now,
                    int(found[0].sum()), recorded["path"])
        return False
    set_attrs(root, manifest={**recorded, "path": now, "sha256": manifest.sha256,
                              "rows": len(manifest.pairs), "previous_path": recorded["path"]})
    consolidate(path)
    log.info("%s: manifest moved from %s to %s (recorded)", path, recorded["path"], now)
    if not quiet:
        print(f"{path}: the manifest is now {now} (was {recorded['path']}): recorded",
              file=out)
    return True


def record_manifest_digest(path: Path, root: zarr.Group, manifest: Manifest) -> None:
    """A manifest edited in place (its pairs matched: labels, a target ...), whose edits the
    steps before recorded: its digest recorded too, so that report and export no longer warn
    that the file changed since the store last ran (called after every check that may
    refuse the manifest: a refused rerun writes nothing)."""
    from hpc_nst.batch.conventions import root_attrs, set_attrs
    from hpc_nst.batch.store import consolidate

    recorded = root_attrs(root).get("manifest", {})
    if recorded.get("path") == str(manifest.path.resolve()) and \
            recorded.get("sha256") != manifest.sha256:
        set_attrs(root, manifest={**recorded, "sha256": manifest.sha256})
        consolidate(path)


def blocking_problems(store_path: Path, manifest: Manifest) -> tuple[list[str], str]:
    """The manifest's problems that stop a run on ``store_path`` and a warning to give if it
    goes ahead: all of them, but the rows of pairs the store has done whose only problem is
    an input file not there now (a scratch purge after the run, a link left dangling): their
    outputs need no input, so they are kept (the warning names them) instead of refusing
    the whole batch."""
    from hpc_nst.batch.store import open_root, store_exists

    if not manifest.problems or not any(p.only_missing_files for p in manifest.pairs):
        return manifest.problems, ""
    try:
        if not store_exists(store_path):
            return manifest.problems, ""
        root = open_root(store_path)
        done = {str(i) for i, s in zip(read_column(root, "pair"), read_column(root, "status"))
                if s == DONE}
    except (StoreError, OSError):  # said as such by the run's own checks
        return manifest.problems, ""
    kept = [p for p in manifest.pairs if p.only_missing_files and p.pair_id in done]
    if not kept:
        return manifest.problems, ""
    skip = {p.line for p in kept}
    return ([row_problem(p.line, p.pair_id, p.error) for p in manifest.pairs
             if p.error and p.line not in skip],
            f"{store_path}: {len(kept)} done pair(s) name input files that are not there now "
            f"(e.g. {kept[0].pair_id}: {kept[0].error}): their outputs are kept (nothing is "
            "computed for them); report and export measure and name them without those inputs")


def rebuild_from_manifest(path: Path, root: zarr.Group, manifest: Manifest,
                          where: list[int]) -> list[str]:
    """Write again from the manifest each array of :data:`~hpc_nst.batch.store.FROM_MANIFEST`
    that does not read back (a damaged chunk: its CRC): the pairs' results never depend on
    them, so nothing is lost but, for ``input_stamp``, the record of the files as they were
    (taken as they are now). Returns their names."""
    from hpc_nst.batch.store import FROM_MANIFEST

    pairs = [manifest.pairs[k] for k in where]
    rebuilt = []
    for name in FROM_MANIFEST:
        if not has(root, name):
            continue
        try:
            read_column(root, name)
            continue
        except StoreError:
            pass
        if name == "metadata":
            cols = [str(c) for c in read_column(root, "metadata_column")]
            values = np.array([[dict(p.metadata).get(c, "") for c in cols] for p in pairs],
                              dtype=object).reshape(len(pairs), len(cols))
        elif name == "input_stamp":
            seen: dict[Path, str] = {}
            values = np.array([input_stamp(p, seen) for p in pairs], dtype=object)
        else:
            values = np.array([p.line if name == "row" else p.target if name == "target_path"
                               else json.dumps(p.cfg.record(), sort_keys=True, default=list)
                               if p.cfg else "" for p in pairs],
                              dtype=root[name].dtype if name == "row" else object)
        root[name][...] = values
        rebuilt.append(name)
    if rebuilt:
        log.warning("%s: the per-pair array(s) %s did not read back (a damaged chunk): written "
                    "again from the manifest%s", path, ", ".join(rebuilt),
                    " (input_stamp: the files as they are now)" if "input_stamp" in rebuilt
                    else "")
    return rebuilt
