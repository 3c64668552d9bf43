"""Resuming: each store row matched to its manifest row, and rows corrected in place.

A rerun's manifest must hold the store's pairs, with the same inputs and parameters
(:func:`match_manifest`); the one exception is a row that was invalid and never ran, which
may be corrected in the manifest and is then written back into the store
(:func:`refresh_rows`) to run with ``--retry-failed``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import zarr

from hpc_nst.batch.manifest import Manifest
from hpc_nst.batch.store import DONE, FAILED, PENDING, has, input_stamp, read_column
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
                 fixes: list[int], cfg: JobConfig) -> None:
    """Write the corrected manifest rows ``fixes`` (store indices; see match_manifest) into
    the store's per-pair inputs and parameters; they run with ``--retry-failed``."""
    if not fixes:
        return
    from hpc_nst.engine.methods import get_method

    terms = set(read_column(root, "term").tolist())
    same_meta = list(manifest.metadata_columns) == [
        str(c) for c in (read_column(root, "metadata_column") if has(root, "metadata_column")
                         else [])]
    for i in fixes:
        p = manifest.pairs[where[i]]
        if p.cfg is not None and not set(get_method(p.cfg.method).loss_terms(p.cfg)) <= terms:
            raise StoreError(f"{path}: the corrected row {p.pair_id} (line {p.line}) records "
                             "loss curves this store has no place for (another method); write "
                             "to a new store with -o NEW.zarr")
        values = {"row": p.line, "content_path": p.content, "style_path": p.style,
                  "target_path": p.target, "params_digest": p.digest,
                  "seed": p.cfg.optim.seed if p.cfg else -1,
                  "params": json.dumps(p.cfg.record(), sort_keys=True, default=list)
                  if p.cfg else ""}
        for name, value in values.items():
            root[name][i] = value
        if same_meta and manifest.metadata_columns:
            root["metadata"][i] = np.array([v for _, v in p.metadata], dtype=object)
        log.info("%s: pair %s corrected in the manifest (line %d): inputs and parameters "
                 "updated", path, p.pair_id, p.line)


def changed_inputs(path: Path, root: zarr.Group, manifest: Manifest, where: list[int],
                   recompute: bool) -> list[str]:
    """Compare each pair's input files with their stamp (size and modification time) in the
    store. Done pairs whose inputs changed are returned (their ids); with ``recompute`` they
    are set pending, to run again on the new files. Every other pair's stamp is brought up to
    date (it runs on the files as they are now). Stores of earlier releases have no stamps:
    nothing is checked."""
    if not has(root, "input_stamp"):
        return []
    stamps = read_column(root, "input_stamp")
    status = read_column(root, "status")
    now = np.array([input_stamp(manifest.pairs[k]) for k in where], dtype=object)
    moved = now != stamps
    done_changed = moved & (status == DONE) & (stamps != "")
    ids = [str(x) for x in read_column(root, "pair")[done_changed]]
    update = moved & ~done_changed
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
