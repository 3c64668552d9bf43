"""The Zarr (format 3) store of a batch run: layout, creation, opening and compatibility checks.

One row of the ``pair`` axis per manifest row. Two kinds of arrays (see ``docs/store.md``):

- bulk data written by workers: ``spectrogram`` (pair, kind, bin, frame), ``audio``
  (pair, sample), ``loss`` (pair, term, record); sharded so that one shard holds exactly one
  task's pairs (one writer per shard file), zero/NaN padded to the store's capacity with the
  true lengths in ``frames`` / ``samples`` / ``records``;
- small per-pair arrays (paths, parameters, status, errors, timings...) written only by the
  driver, in large chunks: at creation, and as each task's outcome comes back (status last).

The driver creates every array up front (no resizing from workers); the store is built under a
temporary name and renamed into place, so a half-created store never exists.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import socket
import time
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from hpc_nst import __version__
from hpc_nst.batch.conventions import (  # noqa: F401 (re-exported)
    EPOCH_UNITS,
    JSON_ATTRS,
    LONG_NAMES,
    compressor,
    index_coord,
    root_attrs,
    set_attrs,
)
from hpc_nst.batch.locations import (  # noqa: F401 (store_exists re-exported)
    input_stamp,
    remove_dead_creations,
    store_exists,
)
from hpc_nst.batch.lock import LOCK_NAME, StoreLock  # noqa: F401 (re-exported)
from hpc_nst.batch.manifest import Manifest
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


#: Per-pair arrays naming each pair (made with the store, never rewritten by a run).
IDENTITY_ARRAYS = ("pair", "content_path", "style_path", "params_digest", "seed")
#: Arrays every batch store has, of any release.
REQUIRED_ARRAYS = (*IDENTITY_ARRAYS, *(n for n in RESULT_ARRAYS if n not in OPTIONAL_ARRAYS),
                   "spectrogram", "audio", "loss")


def _compressor() -> zarr.codecs.ZstdCodec:
    return compressor()


def _roundup(n: int, m: int) -> int:
    return max(m, -(-n // m) * m)


def record_capacity(cfg: JobConfig) -> int:
    """Loss records one pair can produce: recorded steps plus the final state."""
    it, every = cfg.optim.iterations, cfg.optim.record_every
    if cfg.optim.optimizer == "lbfgs":  # line searches may evaluate a little more often
        it += 25
    steps = len(range(0, it, every)) + (1 if it and (it - 1) % every else 0)
    return steps + 1


def versions() -> dict[str, str]:
    """Versions of everything that determines the results."""
    import dask
    import distributed

    out = {"hpc_nst": __version__, "python": platform.python_version(),
           "numpy": np.__version__, "zarr": zarr.__version__, "dask": dask.__version__,
           "distributed": distributed.__version__}
    for name in ("torch", "dask-jobqueue", "soundfile"):
        try:  # no import: importing dask_jobqueue installs a SIGINT handler
            out[name.replace("-", "_")] = metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover
            out[name.replace("-", "_")] = "not installed"
    return out


@dataclass(frozen=True)
class Layout:
    """Sizes fixed at creation (capacities may only grow, by the driver)."""

    n_pairs: int
    pairs_per_task: int
    batch_size: int
    frames: int  # capacity of the frame axis
    samples: int  # capacity of the sample axis
    records: int  # capacity of the record axis


def capacities(manifest: Manifest, cfg: JobConfig) -> tuple[int, int, int]:
    """Frame, sample and record capacity needed by the manifest's valid pairs."""
    hop = cfg.stft.hop_length
    longest = max([max(p.content_samples, p.style_samples) for p in manifest.valid] or [1])
    content = max([p.content_samples for p in manifest.valid] or [1])
    records = max([record_capacity(p.cfg) for p in manifest.valid if p.cfg] or [1])
    # +1 sample: header lengths are estimates when the file is resampled.
    return 1 + (longest + 1) // hop, content + 1, records


def loss_terms(manifest: Manifest, cfg: JobConfig) -> tuple[str, ...]:
    """The store's ``term`` axis: ``total`` and every curve a pair of the manifest (or the job)
    records, from the method registry; in first-seen order."""
    from hpc_nst.engine.methods import get_method

    names: dict[str, None] = {"total": None}
    configs = {p.digest: p.cfg for p in manifest.valid if p.cfg is not None}
    for c in [cfg, *configs.values()]:
        names.update(dict.fromkeys(get_method(c.method).loss_terms(c)))
    return tuple(names)


def create_store(
    path: str | Path,
    cfg: JobConfig,
    manifest: Manifest,
    order: list[int],
    layout: Layout,
) -> None:
    """Create the store at ``path`` (which must not exist) with every array pre-allocated."""
    path = Path(path)
    host = socket.gethostname()
    tmp = path.with_name(f".{path.name}.creating-{host}-{os.getpid()}")
    remove_dead_creations(path, host)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _populate(tmp, cfg, manifest, order, layout)
        # atomic: a half-created store never appears under ``path`` (an empty folder there
        # is replaced: rename() takes the place of an empty directory)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _populate(path: Path, cfg: JobConfig, manifest: Manifest, order: list[int],
              layout: Layout) -> None:
    n, ppt = layout.n_pairs, layout.pairs_per_task
    bins = cfg.stft.n_bins
    pairs = [manifest.pairs[i] for i in order]
    attrs = {
        "format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "job": cfg.record(), "job_digest": cfg.digest(),
        "manifest": {"path": str(manifest.path.resolve()), "sha256": manifest.sha256,
                     "rows": len(manifest.pairs)},
        "versions": versions(),
        "layout": {"pairs_per_task": ppt, "batch_size": layout.batch_size,
                   "frame_chunk": FRAME_CHUNK, "sample_chunk": SAMPLE_CHUNK},
        "sample_rate": cfg.stft.sample_rate, "hop_length": cfg.stft.hop_length,
        "status_codes": dict(enumerate(STATUS_NAMES)), "runs": [],
        "title": "hpc-nst batch store", "Conventions": "CF-1.10",
    }
    attrs = {k: json.dumps(v, sort_keys=True, default=list) if k in JSON_ATTRS else v
             for k, v in attrs.items()}
    root = zarr.open_group(LocalStore(path), mode="w", zarr_format=3, attributes=attrs)
    meta = min(META_CHUNK, max(n, 1))

    def small(name: str, dims: list[str], data: np.ndarray | None, dtype: Any,
              fill: Any, extra: tuple[int, ...] = (), **attrs: Any) -> None:
        attrs.setdefault("long_name", LONG_NAMES.get(name, name.replace("_", " ")))
        arr = root.create_array(
            name, shape=(n, *extra), chunks=(meta, *extra), dtype=dtype, fill_value=fill,
            dimension_names=dims, compressors=_compressor(), attributes=attrs)
        if data is not None:
            arr[...] = data

    def coord(name: str, values: list[Any], dtype: Any, **attrs: Any) -> None:
        attrs.setdefault("long_name", LONG_NAMES.get(name, name))
        arr = root.create_array(name, shape=(len(values),), dtype=dtype, dimension_names=[name],
                                fill_value="" if dtype is str else 0, attributes=attrs)
        arr[...] = np.array(values, dtype=object if dtype is str else dtype)

    for axis, size in (("frame", layout.frames), ("sample", layout.samples),
                       ("record", layout.records)):
        index_coord(root, axis, size)

    coord("kind", list(KINDS), str)
    terms = loss_terms(manifest, cfg)
    coord("term", list(terms), str)
    coord("timing", list(TIMINGS), str,
          description="seconds; started_at/finished_at are Unix times of the pair's batch")
    coord("bin", list(np.arange(bins) * cfg.stft.sample_rate / cfg.stft.n_fft), "float32",
          units="Hz", long_name="STFT bin centre frequency")
    strings = lambda values: np.array(values, dtype=object)  # noqa: E731
    small("pair", ["pair"], strings([p.pair_id for p in pairs]), str, "")
    small("row", ["pair"], np.array([p.line for p in pairs], np.int32), "int32", 0,
          description="line of the manifest (1 = header)")
    for col in ("content", "style", "target"):
        small(f"{col}_path", ["pair"], strings([getattr(p, col) for p in pairs]), str, "",
              description="as written in the manifest (relative to its folder)")
    if manifest.metadata_columns:  # the manifest's extra columns, as text
        coord("metadata_column", list(manifest.metadata_columns), str,
              description="the manifest's metadata columns")
        small("metadata", ["pair", "metadata_column"],
              strings([[v for _, v in p.metadata] for p in pairs]).reshape(
                  len(pairs), len(manifest.metadata_columns)),
              str, "", extra=(len(manifest.metadata_columns),),
              description="the manifest's metadata cells, as written")
    seen: dict[Path, str] = {}
    small("input_stamp", ["pair"], strings([input_stamp(p, seen) for p in pairs]), str, "",
          description="size:mtime_ns of the content|style files when the pair was planned "
                      "or last run (a rerun names done pairs whose inputs changed)")
    small("seed", ["pair"], np.array([p.cfg.optim.seed if p.cfg else -1 for p in pairs],
                                     np.int64), "int64", -1)
    params = {}
    for p in pairs:
        if p.cfg is not None and p.digest not in params:
            params[p.digest] = json.dumps(p.cfg.record(), sort_keys=True, default=list)
    small("params", ["pair"], strings([params.get(p.digest, "") for p in pairs]), str, "",
          description="effective job configuration (JSON)")
    small("params_digest", ["pair"], strings([p.digest for p in pairs]), str, "")
    status = np.array([FAILED if p.error else PENDING for p in pairs], np.int8)
    small("attempts", ["pair"], None, "int32", 0)
    small("error", ["pair"], strings([p.error or "" for p in pairs]), str, "")
    small("device", ["pair"], None, str, "")
    small("host", ["pair"], None, str, "")
    small("frames", ["pair", "kind"], None, "int32", 0, extra=(len(KINDS),))
    small("samples", ["pair"], None, "int32", 0)
    small("records", ["pair"], None, "int32", 0)
    small("spectral_convergence", ["pair"], None, "float32", np.nan, units="1")
    small("timings", ["pair", "timing"], None, "float64", np.nan, extra=(len(TIMINGS),),
          description="durations in s (ms_per_iteration in ms); started_at/finished_at as "
                      "Unix times, also as datetimes in the started_at/finished_at variables")
    for name in ("started_at", "finished_at"):
        small(name, ["pair"], None, "float64", np.nan, units=EPOCH_UNITS,
              calendar="proleptic_gregorian")
    # accounting
    small("scheduler_job", ["pair"], None, str, "",
          description="batch job the pair ran in (SLURM_JOB_ID, ...), 'local' outside one")
    small("device_name", ["pair"], None, str, "")
    small("peak_memory_mb", ["pair"], None, "float32", np.nan, units="MiB",
          description="peak device memory of the pair's batch (CUDA allocated; CPU: the "
                      "worker process's peak resident set)")
    small("device_s", ["pair"], None, "float64", np.nan, units="s",
          description="device time charged to the pair: its batch's features + optimisation "
                      "+ Griffin-Lim seconds divided by the batch's pairs")
    small("wall_s", ["pair"], None, "float64", np.nan, units="s",
          description="wall time of the pair's batch, loading to written")
    small("checksum", ["pair"], None, str, "",
          description="BLAKE2b of the pair's audio, spectrograms and loss as written "
                      "(hpc-nst verify recomputes it)")
    small("batch", ["pair"], None, "int64", -1,
          description="id of the batch the pair last ran in (its first pair's index)")
    small("batch_pairs", ["pair"], None, "int32", 0,
          description="pairs optimised together in that batch")
    small("status", ["pair"], status, "int8", LOST, flag_values=[PENDING, DONE, FAILED],
          flag_meanings=" ".join(STATUS_NAMES))
    fs = min(_roundup(layout.frames, FRAME_CHUNK), FRAME_SHARD)
    root.create_array(
        "spectrogram", shape=(n, len(KINDS), bins, layout.frames),
        shards=(ppt, len(KINDS), bins, fs), chunks=(1, len(KINDS), bins, FRAME_CHUNK),
        dtype="float32", fill_value=0.0, compressors=_compressor(),
        dimension_names=["pair", "kind", "bin", "frame"],
        attributes={"description": "log(1 + |STFT|); frames[pair, kind] are valid",
                    "long_name": "log-magnitude spectrogram", "units": "1"})
    ss = min(_roundup(layout.samples, SAMPLE_CHUNK), SAMPLE_SHARD)
    root.create_array(
        "audio", shape=(n, layout.samples), shards=(ppt, ss), chunks=(1, SAMPLE_CHUNK),
        dtype="float32", fill_value=0.0, compressors=_compressor(),
        dimension_names=["pair", "sample"],
        attributes={"description": "output audio; samples[pair] are valid",
                    "sample_rate": cfg.stft.sample_rate, "long_name": "output audio",
                    "units": "1"})
    root.create_array(
        "loss", shape=(n, len(terms), layout.records), chunks=(ppt, len(terms), layout.records),
        dtype="float32", fill_value=np.nan, compressors=_compressor(),
        dimension_names=["pair", "term", "record"],
        attributes={"description": "loss per recorded iteration (every optim.record_every), "
                                   "final state last; records[pair] are valid",
                    "long_name": "loss", "units": "1"})
    consolidate(path)


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
    if chunk and name in RESULT_ARRAYS:
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
