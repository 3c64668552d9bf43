"""Writing a task's bulk data (spectrograms, audio, loss curves) into its own shards.

Only the task's worker writes these shards. A task that computed every pair of its shard
writes zero/NaN padded blocks without reading; otherwise (a rerun of some pairs, or a pair that
failed here) it reads the shard first, so every pair it did not compute is written back
unchanged, and clears the rows of the pairs it computed entirely. Each shard file
is replaced atomically by zarr's LocalStore (write, then rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from zarr.storage import LocalStore

from hpc_nst.batch.store import KINDS, StoreGoneError, read_column

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from hpc_nst.batch.results import TaskSpec
    from hpc_nst.engine.transfer import TransferResult


def _regions(length: int, shard: int) -> list[tuple[int, int]]:
    return [(a, min(a + shard, length)) for a in range(0, length, shard)]


def _loss_row(losses: dict[str, np.ndarray], terms: tuple[str, ...],
              capacity: int) -> tuple[np.ndarray, int]:
    """(terms, capacity) NaN-padded curves; a longer curve keeps its start and its final value."""
    row = np.full((len(terms), capacity), np.nan, np.float32)
    n = 0
    for k, term in enumerate(terms):
        values = np.asarray(losses.get(term, ()), np.float32)
        if len(values) > capacity:
            values = np.concatenate([values[: capacity - 1], values[-1:]])
        row[k, : len(values)] = values
        n = max(n, len(values))
    return row, n


def digest(*arrays: np.ndarray) -> str:
    """16 hex digits of BLAKE2b over the float32 bytes of ``arrays`` (C order)."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return h.hexdigest()


def pair_checksum(audio: np.ndarray, spectrograms: list[np.ndarray], loss: np.ndarray) -> str:
    """``audio:<hex> spectrogram:<hex> loss:<hex>`` of a pair's valid data as stored (audio
    ``[:samples]``, each kind's ``[:, :frames]``, loss ``[:, :records]``)."""
    return (f"audio:{digest(audio)} spectrogram:{digest(*spectrograms)} "
            f"loss:{digest(loss)}")


def _check_store(spec: TaskSpec) -> None:
    """Raise :class:`StoreGoneError` unless the task's store is still there, and the same
    folder (its inode) as when the task was made."""
    root = Path(spec.store)
    try:
        same = (root / "zarr.json").is_file() and (
            spec.store_inode is None or root.stat().st_ino == spec.store_inode)
    except OSError:
        same = False
    if not same:
        raise StoreGoneError(f"{spec.store}: the store is gone (deleted, moved, replaced or "
                             "unmounted); this task's results are not written")


#: The failure of a pair whose shard could not be read back (``verify --repair`` finds it).
DAMAGED_SHARD = "a shard of the store it is written into is damaged"


class _DamagedShard(Exception):
    """The shard a task writes into cannot be read back (its pairs' neighbours kept)."""


def _read_back(arr: zarr.Array, sel: tuple[slice, ...]) -> np.ndarray:
    """What the shard holds now, to replace only this task's pairs in it; a shard file that
    cannot be decoded (truncated, a flipped byte: its checksum) is :class:`_DamagedShard`.
    A file-system error (a full disk, an unmounted store) is not: it stays what it is."""
    with _shard_damage(arr):
        return np.asarray(arr[sel])


def _write_back(arr: zarr.Array, sel: tuple[slice, ...], block: np.ndarray) -> None:
    """``arr[sel] = block``; zarr reads a shard it writes only part of (to merge), so a
    damaged one is :class:`_DamagedShard` here too."""
    with _shard_damage(arr):
        arr[sel] = block


@contextlib.contextmanager
def _shard_damage(arr: zarr.Array) -> Iterator[None]:
    try:
        yield
    except (OSError, MemoryError):
        raise
    except Exception as exc:  # a codec's or the shard index's checksum
        what = str(exc).split(". Stored:")[0]  # (not the raw checksum bytes)
        raise _DamagedShard(f"{arr.path}: {type(exc).__name__}: {what}") from exc


def write_task_data(
    spec: TaskSpec, results: dict[int, TransferResult]
) -> tuple[dict[int, str], dict[int, int], dict[int, str]]:
    """Write ``results`` (store index -> result) into the task's shards (see
    :func:`_write_task_data`); where a shard it must read back is damaged, every pair of the
    task fails with a message saying so and what to do (not a codec's traceback, retried
    in vain with ``--retry-failed``)."""
    try:
        return _write_task_data(spec, results)
    except _DamagedShard as exc:
        why = (f"{DAMAGED_SHARD} ({str(exc)[:300]}); run hpc-nst verify {spec.store} "
               "--repair (it rewrites that shard, resetting the done pairs it lost), then "
               "rerun with --retry-failed")
        return dict.fromkeys(results, why), {}, {}


def _write_task_data(
    spec: TaskSpec, results: dict[int, TransferResult]
) -> tuple[dict[int, str], dict[int, int], dict[int, str]]:
    """Write ``results`` (store index -> result) into the task's shards.

    Returns an error message for each pair that does not fit the store (it is not written),
    the number of loss records kept for each pair written, and each written pair's checksum
    (:func:`pair_checksum`, recorded by the driver; ``hpc-nst verify`` recomputes it).
    """
    _check_store(spec)  # never write into a ghost store
    store = LocalStore(spec.store)
    spec_arr = zarr.open_array(store, path="spectrogram", mode="r+")
    audio_arr = zarr.open_array(store, path="audio", mode="r+")
    loss_arr = zarr.open_array(store, path="loss", mode="r+")
    n_frames, n_samples = spec_arr.shape[3], audio_arr.shape[1]
    errors: dict[int, str] = {}
    ok: dict[int, TransferResult] = {}
    for i, r in results.items():
        frames = max(r.output.shape[1], r.content.shape[1], r.style.shape[1])
        if frames > n_frames or len(r.audio) > n_samples:
            errors[i] = (f"longer than the store's capacity ({frames} frames / {len(r.audio)} "
                         f"samples; the store holds {n_frames} / {n_samples}): was the audio "
                         "file replaced after the store was created?")
        else:
            ok[i] = r
    if not ok:
        return errors, {}, {}
    start, stop = spec.start, spec.stop
    # Zero-padded blocks without reading only when this task computed every pair of its shard.
    # Otherwise the shard is read and only the pairs computed here are replaced: a pair that
    # failed in this execution keeps what is on disk. This matters when dask runs a task twice
    # (its worker died after the driver had taken the first result): the second execution
    # must not wipe a pair the first one computed and the driver recorded done (found by
    # benchmarks/bench_load.py + hpc-nst verify: zeros under a done pair).
    whole = len(ok) == stop - start

    # Spectrograms, one frame-shard region at a time (bounded memory). A partial task clears its
    # pairs' rows over the whole capacity, so nothing of an earlier attempt survives.
    t_max = max(max(r.content.shape[1], r.style.shape[1], r.output.shape[1])
                for r in ok.values()) if whole else n_frames
    bins = spec_arr.shape[2]
    for f0, f1 in _regions(t_max, spec_arr.shards[3]):
        if whole:
            block = np.zeros((stop - start, len(KINDS), bins, f1 - f0), np.float32)
        else:
            block = _read_back(spec_arr, (slice(start, stop), slice(None), slice(None),
                                          slice(f0, f1)))
        for i, r in ok.items():
            block[i - start] = 0.0
            for k, spec2d in enumerate((r.content, r.style, r.init, r.output)):
                part = spec2d[:, f0:f1]
                block[i - start, k, :, : part.shape[1]] = part
        _write_back(spec_arr, (slice(start, stop), slice(None), slice(None), slice(f0, f1)),
                    block)

    # Output audio.
    s_max = max(len(r.audio) for r in ok.values()) if whole else n_samples
    for a0, a1 in _regions(s_max, audio_arr.shards[1]):
        block = (np.zeros((stop - start, a1 - a0), np.float32) if whole
                 else _read_back(audio_arr, (slice(start, stop), slice(a0, a1))))
        for i, r in ok.items():
            part = r.audio[a0:a1]
            block[i - start] = 0.0
            block[i - start, : len(part)] = part
        _write_back(audio_arr, (slice(start, stop), slice(a0, a1)), block)

    # Loss curves.
    capacity = loss_arr.shape[2]
    terms = tuple(str(t) for t in read_column(zarr.open_group(store, mode="r"), "term"))
    block = (np.full((stop - start, len(terms), capacity), np.nan, np.float32) if whole
             else _read_back(loss_arr, (slice(start, stop),)))
    records, sums = {}, {}
    for i, r in ok.items():
        unknown = set(r.losses) - set(terms)
        if unknown:
            log.warning("pair #%d: loss curve(s) %s not in the store's term axis; not kept",
                        i, sorted(unknown))
        block[i - start], records[i] = _loss_row(r.losses, terms, capacity)
        sums[i] = pair_checksum(r.audio, [r.content, r.style, r.init, r.output],
                                block[i - start, :, : records[i]])
    _write_back(loss_arr, (slice(start, stop),), block)
    # the store deleted or replaced while this wrote: zarr re-creates the folders it writes
    # into, so the write "succeeded" into a ghost; report the pairs failed instead of done
    _check_store(spec)
    return errors, records, sums
