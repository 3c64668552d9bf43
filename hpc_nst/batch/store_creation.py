"""Creating a batch store: its layout, capacities and every array, pre-allocated by the driver.

The store is built under a hidden temporary name (``.NAME.creating-HOST-PID``) and renamed into
place, so a half-created store never exists; see ``hpc_nst.batch.store`` for opening and
checking one, and ``docs/store.md`` for the layout.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.storage import LocalStore

from hpc_nst import __version__
from hpc_nst.batch.conventions import (
    EPOCH_UNITS,
    JSON_ATTRS,
    LONG_NAMES,
    checked_compressors,
    compressor,
    index_coord,
)
from hpc_nst.batch.locations import input_stamp, remove_dead_creations
from hpc_nst.batch.manifest import Manifest
from hpc_nst.batch.store import (
    DONE,
    FAILED,
    FORMAT,
    FRAME_CHUNK,
    FRAME_SHARD,
    KINDS,
    LOST,
    META_CHUNK,
    PENDING,
    SAMPLE_CHUNK,
    SAMPLE_SHARD,
    STATUS_NAMES,
    TIMINGS,
    consolidate,
)
from hpc_nst.config import JobConfig


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
            dimension_names=dims, compressors=checked_compressors(), attributes=attrs)
        if data is not None:
            arr[...] = data

    def coord(name: str, values: list[Any], dtype: Any, **attrs: Any) -> None:
        attrs.setdefault("long_name", LONG_NAMES.get(name, name))
        arr = root.create_array(name, shape=(len(values),), dtype=dtype, dimension_names=[name],
                                fill_value="" if dtype is str else 0, attributes=attrs,
                                compressors=checked_compressors())
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
        dtype="float32", fill_value=0.0, compressors=compressor(),
        dimension_names=["pair", "kind", "bin", "frame"],
        attributes={"description": "log(1 + |STFT|); frames[pair, kind] are valid",
                    "long_name": "log-magnitude spectrogram", "units": "1"})
    ss = min(_roundup(layout.samples, SAMPLE_CHUNK), SAMPLE_SHARD)
    root.create_array(
        "audio", shape=(n, layout.samples), shards=(ppt, ss), chunks=(1, SAMPLE_CHUNK),
        dtype="float32", fill_value=0.0, compressors=compressor(),
        dimension_names=["pair", "sample"],
        attributes={"description": "output audio; samples[pair] are valid",
                    "sample_rate": cfg.stft.sample_rate, "long_name": "output audio",
                    "units": "1"})
    root.create_array(
        "loss", shape=(n, len(terms), layout.records), chunks=(ppt, len(terms), layout.records),
        dtype="float32", fill_value=np.nan, compressors=compressor(),
        dimension_names=["pair", "term", "record"],
        attributes={"description": "loss per recorded iteration (every optim.record_every), "
                                   "final state last; records[pair] are valid",
                    "long_name": "loss", "units": "1"})
    consolidate(path)
