"""The Zarr (format 3) store of a batch run: its arrays, opening, reading and compatibility checks.

One row of the ``pair`` axis per manifest row. Two kinds of arrays (see ``docs/store.md``):

- bulk data written by workers: ``spectrogram`` (pair, kind, bin, frame), ``audio``
  (pair, sample), ``loss`` (pair, term, record); sharded so that one shard holds exactly one
  task's pairs (one writer per shard file), zero/NaN padded to the store's capacity with the
  true lengths in ``frames`` / ``samples`` / ``records``;
- small per-pair arrays (paths, parameters, status, errors, timings...) written only by the
  driver, in large chunks: at creation, and as each task's outcome comes back (status last).

The driver creates every array up front (no resizing from workers; ``store_creation``); the
store is built under a temporary name and renamed into place, so a half-created store never
exists.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from hpc_nst.batch.conventions import index_coord, root_attrs, set_attrs
from hpc_nst.batch.locations import store_exists  # noqa: F401 (re-exported)
from hpc_nst.batch.lock import LOCK_NAME, StoreLock  # noqa: F401 (re-exported)
from hpc_nst.config import JobConfig, effective_parameters
from hpc_nst.errors import StoreError, StoreGoneError  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)
FORMAT = "hpc_nst.batch/1"
KINDS = ("content", "style", "init", "output")
TIMINGS = ("load_s", "features_s", "optimise_s", "griffin_lim_s", "ms_per_iteration",
           "write_s", "started_at", "finished_at")
PENDING, DONE, FAILED = 0, 1, 2
#: The status fill value of stores made since 2026-12-07: never written, so a ``status`` chunk
#: is never all fill and zarr never deletes its file; a missing chunk file reads back as LOST
#: (``hpc-nst verify`` names it, a rerun redoes the pair). Earlier stores fill with PENDING.
LOST = -1
STATUS_NAMES = ("pending", "done", "failed")
FRAME_CHUNK, FRAME_SHARD = 256, 4096  # 2.56 s inner chunks, shards of at most ~41 s
SAMPLE_CHUNK, SAMPLE_SHARD = 65536, 16 * 65536  # ~4 s inner chunks, shards of at most ~65 s
META_CHUNK = 8192  # pairs per chunk of the driver-written arrays
#: Driver-written result arrays, in write order (``status`` is always written last).
RESULT_ARRAYS = ("attempts", "error", "device", "host", "frames", "samples", "records",
                 "spectral_convergence", "timings", "started_at", "finished_at", "batch",
                 "batch_pairs", "scheduler_job", "device_name", "peak_memory_mb", "device_s",
                 "wall_s", "checksum", "status")
#: Result arrays that stores made by earlier releases lack (readers and writers skip them).
OPTIONAL_ARRAYS = ("batch", "batch_pairs", "started_at", "finished_at", "scheduler_job",
                   "device_name", "peak_memory_mb", "device_s", "wall_s", "checksum")


#: Per-pair arrays made from the manifest alone (the computation never reads them): a rerun
#: writes a damaged one again from it (:func:`hpc_nst.batch.resume.rebuild_from_manifest`).
FROM_MANIFEST = ("row", "target_path", "params", "metadata", "input_stamp")
#: Per-pair arrays naming each pair (made with the store, never rewritten by a run).
IDENTITY_ARRAYS = ("pair", "content_path", "style_path", "params_digest", "seed")
#: Arrays every batch store has, of any release.
REQUIRED_ARRAYS = (*IDENTITY_ARRAYS, *(n for n in RESULT_ARRAYS if n not in OPTIONAL_ARRAYS),
                   "spectrogram", "audio", "loss")


def consolidate(path: str | Path) -> None:
    """Refresh the consolidated metadata (driver only, after any metadata change)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zarr.consolidate_metadata(LocalStore(path))


def require_writable(path: str | Path) -> None:
    """Refuse, before any work, a store that cannot be written (read-only mount, no
    permission); reading commands still work on such a store."""
    from hpc_nst.fsutil import unwritable_reason

    why = unwritable_reason(path)
    if why is not None:
        what = ("Reading commands (status, verify, report, export) work on it as it is; to "
                "run, copy it to a writable place or choose another -o") if Path(path).exists() \
            else "choose a writable place with -o"
        raise StoreError(f"{path}: cannot write the store there: {why}. {what}")


def identity(path: str | Path) -> tuple[int, int]:
    """(device, inode) of the store's directory: tells a store from one put in its place."""
    info = os.stat(path)
    return info.st_dev, info.st_ino


def check_still_there(path: str | Path, ident: tuple[int, int]) -> None:
    """Raise :class:`StoreGoneError` when the store at ``path`` is no longer the one with
    identity ``ident`` (deleted, moved away, replaced, its filesystem unmounted)."""
    try:
        same = identity(path) == ident and (Path(path) / "zarr.json").is_file()
    except OSError:
        same = False
    if not same:
        raise StoreGoneError(
            f"{path}: the store disappeared during the run (deleted, moved, replaced or its "
            "filesystem unmounted); nothing more is written there. Pairs finished since the "
            "last save are lost: put the store back (or remount it) and rerun the same "
            "command to resume, or rerun to start a new store")


def open_root(path: str | Path, mode: str = "r") -> zarr.Group:
    """Open the store's root group, checking that it is a batch store."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"{path}: not a Zarr store (no zarr.json)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            root = zarr.open_group(LocalStore(path, read_only=mode == "r"), mode=mode,
                                   use_consolidated=False)
            fmt = root.attrs.get("format")
        except (ValueError, TypeError, KeyError) as exc:  # JSON or metadata that does not parse
            raise StoreError(f"{path}: its metadata {path / 'zarr.json'} is unreadable "
                             f"({type(exc).__name__}: {' '.join(str(exc).split())[:160]}); the "
                             "store's description is damaged: restore the store from a backup "
                             "or copy, or rerun the manifest into a new store") from None
    if fmt != FORMAT:
        raise StoreError(f"{path}: not an hpc-nst batch store (format "
                         f"{fmt!r}, expected {FORMAT!r})")
    return root


def read_column(root: zarr.Group, name: str) -> np.ndarray:
    """A whole small array, strings as a numpy object array; a damaged or missing one is a
    :class:`StoreError` naming it (not a codec's traceback)."""
    data = read_rows(root, name)
    return data.astype(object) if data.dtype.kind in "OTU" else data


def has(root: zarr.Group, name: str) -> bool:
    """Whether the store has the array ``name``; an array whose metadata cannot be read
    counts as there (reading it then says what is wrong with it)."""
    try:
        return name in root
    except Exception:  # noqa: BLE001 - damaged metadata: read_column names it
        return True


def read_rows(root: zarr.Group, name: str, start: int | None = None,
              stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` (all by default) of the store's array ``name``; a damaged or missing
    one is a :class:`StoreError` naming it, a file-system error one saying so."""
    arr = array(root, name)
    try:
        return arr[start:stop]
    except OSError as exc:
        raise StoreError(f"{getattr(root.store, 'root', 'the store')}: cannot read its array "
                         f"{name!r} ({exc.strerror or exc})") from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any codec's failure: the same advice
        raise damaged(root, name, exc, chunk=True) from None


def array(root: zarr.Group, name: str) -> zarr.Array:
    """The store's array ``name``; one whose metadata is missing or cannot be read is the
    :class:`StoreError` of :func:`damaged` (it was a JSON or KeyError traceback)."""
    try:
        return root[name]
    except OSError as exc:
        raise StoreError(f"{getattr(root.store, 'root', 'the store')}: cannot read its array "
                         f"{name!r} ({exc.strerror or exc})") from exc
    except Exception as exc:  # noqa: BLE001 - JSON, KeyError, a codec's: the same advice
        raise damaged(root, name, exc) from None


def check_arrays(root: zarr.Group) -> None:
    """A :class:`StoreError` naming the first array every store has that is missing or whose
    metadata cannot be read, or the first lost chunk file of those naming the pairs."""
    for name in REQUIRED_ARRAYS:
        array(root, name)
    lost_files = lost_identity_chunks(root)
    if lost_files:
        raise StoreError(f"{getattr(root.store, 'root', 'the store')}: {lost_files[0]}")


def lost_identity_chunks(root: zarr.Group, status: np.ndarray | None = None,
                         attempts: np.ndarray | None = None) -> list[str]:
    """A line for each chunk file of the arrays naming the pairs that is missing while its
    rows are not all invalid rows that never ran (valid rows never hold the fill value, so
    such a file always exists; a lost one reads back as "" or -1)."""
    where = Path(str(getattr(root.store, "root", ".")))
    if status is None:
        status = read_column(root, "status")
    if attempts is None:
        try:
            attempts = read_column(root, "attempts")
        except StoreError:  # (its damage is said where it is read)
            attempts = np.zeros(len(status), np.int32)
    never_ran = (status == FAILED) & (attempts == 0)
    problems = []
    for name in (*IDENTITY_ARRAYS, "row"):
        if not has(root, name):
            continue
        for r0, r1, key in pair_chunks(array(root, name)):
            if not (where / name / key).exists() and not never_ran[r0:r1].all():
                problems.append(f"the file {where / name / key} (rows {r0}..{r1 - 1} of "
                                f"{name!r}, which names the pairs) is lost: restore the store "
                                "from a backup or copy, or rerun the manifest into a new store")
    return problems


def pair_chunks(arr: zarr.Array) -> list[tuple[int, int, str]]:
    """``(first row, end row, chunk key)`` of each chunk of a per-pair array (one chunk
    along its other axes)."""
    step = int(arr.chunks[0])
    return [(r0, min(r0 + step, arr.shape[0]),
             arr.metadata.encode_chunk_key((r0 // step, *[0] * (arr.ndim - 1))))
            for r0 in range(0, arr.shape[0], step)]


def warn_lost(path: Path, status: np.ndarray) -> None:
    """Say how many pairs' status is lost (they are left out as not done)."""
    lost = int((status == LOST).sum())
    if lost:
        log.warning("%s: %d pair(s) have lost their status (a missing file of 'status') and "
                    "are left out as not done: hpc-nst verify --repair STORE, then rerun the "
                    "batch (their data is computed again with the same bits)", path, lost)


def damaged(root: zarr.Group, name: str, exc: BaseException,
            chunk: bool = False) -> StoreError:
    """The error for the store's array ``name`` that cannot be read (``chunk``: its data, not
    its metadata; for a record the driver writes, ``verify --repair`` mends that)."""
    where = getattr(root.store, "root", None)
    what = "missing" if isinstance(exc, KeyError) else \
        f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})"
    if chunk and name in FROM_MANIFEST:
        advice = ("rerun the same hpc-nst run command: it writes this array again from the "
                  "manifest (nothing is computed again); or restore the store")
    elif chunk and name in RESULT_ARRAYS:
        advice = (f"hpc-nst verify --repair {where or 'STORE'} writes a damaged chunk of it "
                  "again (the pairs it held are computed again where needed), then rerun the "
                  "batch; or restore the store from a backup or copy")
    else:
        advice = ("restore the store from a backup or copy, or rerun the manifest into a new "
                  "store (hpc-nst verify STORE lists the store's problems)")
    return StoreError(f"{where or 'the store'}: its per-pair array {name!r} is {what}, under "
                      f"{Path(str(where or '.')) / name}; the store's bookkeeping is damaged "
                      f"(a disk or copy fault): {advice}")


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, (list, tuple)) else v
    return out


def check_job(path: Path, root: zarr.Group, cfg: JobConfig) -> None:
    """Refuse a job configuration different from the one the store was created with."""
    if root.attrs.get("job_digest") == cfg.digest():
        return
    old = _flat(effective_parameters(dict(root_attrs(root)["job"])))
    new = _flat(effective_parameters(cfg.record()))
    diffs = [f"{k}: store has {old.get(k)!r}, this run {new.get(k)!r}"
             for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    raise StoreError(
        f"{path} was created with a different job configuration; refusing to mix results.\n  "
        + "\n  ".join(diffs or ["(digests differ)"])
        + "\nRerun with the original --job/--set, or write to a new store with -o NEW.zarr.")


def ensure_capacity(path: Path, root: zarr.Group, frames: int, samples: int,
                    records: int) -> bool:
    """Grow the frame/sample/record axes (driver only, before any task runs). Idempotent: a
    growth cut short (an array resized, its index coordinate or the consolidated metadata not
    yet) is completed by the next call."""
    grown = False
    for name, axis, need in (("spectrogram", 3, frames), ("audio", 1, samples),
                             ("loss", 2, records)):
        coord = {"spectrogram": "frame", "audio": "sample", "loss": "record"}[name]
        arr = root[name]
        if need > arr.shape[axis]:
            if name == "loss":
                raise StoreError(f"{path}: pairs now record {need} loss values, the store holds "
                                 f"{arr.shape[axis]}; write to a new store with -o NEW.zarr")
            shape = list(arr.shape)
            shape[axis] = need
            arr.resize(tuple(shape))
            grown = True
        # stores of earlier releases have no index coordinates
        if coord in root and root[coord].shape[0] != arr.shape[axis]:
            index_coord(root, coord, arr.shape[axis])
            grown = True
    if grown:
        consolidate(path)
    return grown


def update_runs(path: Path, root: zarr.Group, entry: dict[str, Any]) -> None:
    """Append or update (same ``id``) an entry of the root ``runs`` attribute."""
    runs = [r for r in root_attrs(root).get("runs", []) if r.get("id") != entry.get("id")]
    set_attrs(root, runs=[*runs, entry])
    consolidate(path)
