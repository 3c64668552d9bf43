"""``hpc-nst verify``: check every done pair of a store against what was written.

For each done pair: its bulk data is read back (audio ``[:samples]``, each spectrogram kind
``[:, :frames]``, loss ``[:, :records]``) and hashed as the worker hashed it when writing
(:func:`hpc_nst.batch.writer.pair_checksum`); a chunk that cannot be decoded (truncated,
corrupted), an array or chunk that is missing (read back as fill values), lengths beyond the
store's capacity, a pair marked done without data or checksum and a status whose chunk file
is missing (stores made since the status fill became ``LOST``) are all reported, per pair,
with the reason. ``repair`` resets those pairs to pending (under the store's lock) so that the
next ``hpc-nst run`` redoes them. Pairs of stores written before checksums existed are
checked for readability and lengths only, and said to be so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpc_nst.batch import store as st
from hpc_nst.batch.writer import DAMAGED_SHARD, pair_checksum

if TYPE_CHECKING:
    from hpc_nst.batch.reader import StoreInfo

log = logging.getLogger(__name__)
BULK = ("audio", "spectrogram", "loss")
#: How the error of a pair ``repair`` reset begins (an export keeps its earlier file).
REPAIR_RESET = "reset by hpc-nst verify --repair"
#: The records a done pair's data is checked with: a damaged chunk of one resets its done
#: pairs; of the others (host, timings, ...) it is written again and the pairs stay done.
DATA_RECORDS = ("samples", "frames", "records", "checksum")


@dataclass
class VerifyResult:
    store: Path
    done: int = 0
    checked: int = 0
    unchecked: int = 0  # done pairs without a recorded checksum (earlier releases)
    bad: dict[int, str] = field(default_factory=dict)  # store index -> problem
    store_problems: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    #: result arrays with damaged chunks -> their rows (repair writes them again)
    broken: dict[str, list[int]] = field(default_factory=dict)
    #: pairs not done that failed to be written into a damaged shard (repair rewrites it)
    unwritable: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad and not self.store_problems and not self.broken \
            and not self.unwritable


def _scan_bookkeeping(root: Any, res: VerifyResult) -> dict[str, np.ndarray]:
    """Every per-pair array, decoded chunk by chunk (read once, for all the checks below):
    an undecodable chunk of a driver-written result array reads as fill values and is
    repairable (``res.broken``: written again; the done pairs among its rows are computed
    again where it is a status or a record their data is checked with); of the arrays
    naming the pairs, a store problem."""
    columns: dict[str, np.ndarray] = {}
    for name in sorted(p.name for p in res.store.iterdir() if (p / "zarr.json").is_file()):
        if name in BULK:
            continue
        try:
            arr = root[name]
            if (arr.metadata.dimension_names or (None,))[0] != "pair":
                continue
        except Exception as exc:  # noqa: BLE001 - its metadata does not parse
            res.store_problems.append(str(st.damaged(root, name, exc)))
            continue
        out = np.full(arr.shape, arr.fill_value,
                      dtype=object if arr.dtype.kind in "OTU" else arr.dtype)
        for r0, r1, _ in st.pair_chunks(arr):
            try:
                out[r0:r1] = arr[r0:r1]
            except OSError as exc:  # not damage: the file system (permissions, I/O)
                res.store_problems.append(f"cannot read {name!r} rows {r0}..{r1 - 1} "
                                          f"({exc.strerror or exc})")
            except Exception as exc:  # noqa: BLE001 - a codec's error: the chunk is damaged
                if name in st.RESULT_ARRAYS:
                    res.broken.setdefault(name, []).extend(range(r0, r1))
                else:  # (of an array made from the manifest, a rerun writes it again)
                    res.store_problems.append(str(st.damaged(root, name, exc,
                                                             chunk=name in st.FROM_MANIFEST)))
        columns[name] = out
    return columns


def _rewrite_broken(root: Any, res: VerifyResult) -> None:
    """Write the damaged chunks of result arrays again with fill values (their rows' records
    are lost; :func:`repair` then resets the pairs in ``res.bad``)."""
    for name, rows in res.broken.items():
        arr = root[name]
        for r0, r1, key in st.pair_chunks(arr):
            if r0 in rows and _decodes(arr, (slice(r0, r1),), res.store) is None:
                # (still damaged under the lock: a run meanwhile may have written it again)
                (res.store / name / key).unlink(missing_ok=True)
                log.warning("%s: removed the damaged chunk %s/%s (rows %d..%d)", res.store,
                            name, key, r0, r1 - 1)


def _read(root: Any, i: int, samples: int, frames: np.ndarray, records: int
          ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    audio = np.asarray(root["audio"][i, :samples])
    longest = int(frames.max()) if len(frames) else 0
    block = np.asarray(root["spectrogram"][i, :, :, :longest])
    specs = [block[k, :, : int(frames[k])] for k in range(len(frames))]
    loss = np.asarray(root["loss"][i, :, :records])
    return audio, specs, loss


def verify_store(path: str | Path) -> VerifyResult:
    """Check every done pair of the store at ``path``."""
    path = Path(path)
    res = VerifyResult(path)
    try:
        root = st.open_root(path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
        res.store_problems.append(f"cannot open the store: {exc}")
        return res
    for name in st.REQUIRED_ARRAYS:
        if not st.has(root, name):
            res.store_problems.append(f"array {name!r} is missing")
    if res.store_problems:
        return res
    columns = _scan_bookkeeping(root, res)
    if res.store_problems:
        return res
    status, samples, frames, records = (columns[n] for n in
                                        ("status", "samples", "frames", "records"))
    res.ids = [str(x) for x in columns["pair"]]
    res.unwritable = [i for i, e in enumerate(columns.get("error", ()))  # (a damaged chunk:
                      if DAMAGED_SHARD in str(e) and status[i] != st.DONE]  # fill, above)
    sums = columns.get("checksum")
    res.store_problems.extend(st.lost_identity_chunks(root, status, columns["attempts"]))
    if res.store_problems:
        return res
    for name, rows in res.broken.items():
        for i in rows:
            if name == "status":
                res.bad[int(i)] = ("its status is unreadable (a damaged chunk file of "
                                   "'status'): whether it was done is not known")
            elif name in DATA_RECORDS and status[i] == st.DONE:
                res.bad[int(i)] = (f"its record in {name!r} is unreadable (a damaged chunk "
                                   "file of that array): its data cannot be checked")
    try:
        cap_s, cap_f, cap_r = (int(st.array(root, "audio").shape[1]),
                               int(st.array(root, "spectrogram").shape[3]),
                               int(st.array(root, "loss").shape[2]))
    except st.StoreError as exc:  # an array's metadata lost: nothing of it can be checked
        res.store_problems.append(str(exc))
        return res
    for i in np.flatnonzero(status == st.LOST):
        res.bad.setdefault(int(i), "its status is lost (the file of the 'status' chunk "
                           "holding it is missing): whether it was done is not known")
    unknown = np.flatnonzero(((status < 0) & (status != st.LOST)) | (status > st.FAILED))
    for i in unknown:
        res.bad[int(i)] = f"unknown status code {int(status[i])}"
    for i in np.flatnonzero(status == st.DONE):
        i = int(i)
        res.done += 1
        if i in res.bad:  # a record it is checked with is unreadable (said above)
            continue
        n, f, r = int(samples[i]), frames[i], int(records[i])
        if n <= 0:
            res.bad[i] = "marked done but holds no audio (samples = 0)"
            continue
        if n > cap_s or int(f.max()) > cap_f or r > cap_r:
            res.bad[i] = (f"lengths beyond the store's capacity (samples {n}/{cap_s}, frames "
                          f"{int(f.max())}/{cap_f}, records {r}/{cap_r})")
            continue
        try:
            audio, specs, loss = _read(root, i, n, f, r)
        except Exception as exc:  # noqa: BLE001 - a chunk that does not decode
            res.bad[i] = f"unreadable data ({type(exc).__name__}: {exc})"
            continue
        want = str(sums[i]) if sums is not None else ""
        if sums is not None and not want:  # every done pair of such a store has one
            res.bad[i] = ("marked done but its checksum is missing (the file of the "
                          "'checksum' chunk holding it is lost?): its data cannot be checked")
            continue
        if not want:
            res.unchecked += 1
            if not np.abs(audio).any():
                res.bad[i] = "marked done but its audio is all zeros (data missing)"
            continue
        got = pair_checksum(audio, specs, loss)
        if got != want:
            parts = [p.split(":")[0] for p, q in zip(got.split(), want.split()) if p != q]
            res.bad[i] = (f"checksum mismatch in {', '.join(parts)}: the data on disk is not "
                          "what was written (corrupted or missing chunk)")
            continue
        res.checked += 1
    return res


def _decodes(arr: Any, where: tuple[Any, ...], store: Path) -> np.ndarray | None:
    """``arr[where]``, or None where it does not decode; a file that cannot be read at all
    (permissions, an I/O error) is not corruption: a StoreError, nothing is removed."""
    from hpc_nst.errors import StoreError

    try:
        return np.asarray(arr[where])
    except (OSError, MemoryError) as exc:
        raise StoreError(f"{store}: cannot read {arr.path} ({type(exc).__name__}: {exc}); fix "
                         "the file system or permissions and rerun hpc-nst verify --repair "
                         "(nothing was changed)") from None
    except Exception:  # noqa: BLE001 - a codec or checksum error: the data does not decode
        return None


def _rewrite_undecodable_shards(root: Any, store: Path, rows: set[int]) -> dict[str, list[int]]:
    """Rewrite the bulk arrays' shard files holding any of ``rows`` that do not decode as a
    whole (a truncated shard's index is gone; a rerun's write into it would read it to merge,
    and fail): the rows that still read back are kept in memory, the file is removed and
    written again once. Returns each rewritten file's store-relative key and the rows it lost."""
    import math

    lost: dict[str, list[int]] = {}
    for name in BULK:
        arr = root[name]
        shard = arr.shards or arr.chunks
        rest = [range(math.ceil(n / s)) for n, s in zip(arr.shape[1:], shard[1:])]
        for r0 in sorted({row - row % shard[0] for row in rows}):
            span = range(r0, min(r0 + shard[0], arr.shape[0]))
            for coords in np.ndindex(*(len(x) for x in rest)):
                region = tuple(slice(c * s, min((c + 1) * s, n))
                               for c, s, n in zip(coords, shard[1:], arr.shape[1:]))
                if _decodes(arr, (slice(span.start, span.stop), *region), store) is not None:
                    continue
                block = np.full((len(span), *(r.stop - r.start for r in region)),
                                arr.fill_value, dtype=arr.dtype)
                missing = []
                for k, i in enumerate(span):
                    row = _decodes(arr, (i, *region), store)
                    if row is None:
                        missing.append(i)
                    else:
                        block[k] = row
                key = arr.metadata.encode_chunk_key((r0 // shard[0], *coords))
                (store / name / key).unlink(missing_ok=True)
                arr[(slice(span.start, span.stop), *region)] = block
                lost[f"{name}/{key}"] = missing
                log.warning("%s: rewrote %s/%s, which did not decode (%d of %d rows lost)",
                            store, name, key, len(missing), len(span))
    return lost


def repair(res: VerifyResult) -> int:
    """Reset the bad pairs of ``res`` to pending (under the store's lock); returns how many.
    A shard file that does not decode as a whole is first rewritten with the rows that still
    read back (a rerun could not write into it), and any done pair it lost is reset too; so
    is the shard of a pair that failed to be written into it (a shard holding no done pair,
    which the checks of done pairs never read)."""
    if not res.bad and not res.broken and not res.unwritable:
        return 0
    with st.StoreLock(res.store):
        root = st.open_root(res.store, mode="r+")
        _rewrite_broken(root, res)
        status = root["status"][:]
        error = st.read_column(root, "error")
        unreadable = {i for i, problem in res.bad.items() if problem.startswith("unreadable")}
        unreadable |= set(res.unwritable)
        for key, rows in _rewrite_undecodable_shards(root, res.store, unreadable).items():
            for i in rows:
                if status[i] == st.DONE and i not in res.bad:
                    res.bad[i] = f"its shard {key} did not decode; its data was lost"
        for i in res.unwritable:  # (still failed: they run with --retry-failed)
            error[i] = ("its shard did not decode and was rewritten by hpc-nst verify "
                        "--repair: rerun with --retry-failed")
        for i, problem in res.bad.items():
            status[i] = st.PENDING
            error[i] = f"{REPAIR_RESET}: {problem}"
        root["error"][:] = error
        root["status"][:] = status  # status last, as the driver writes
    log.info("%s: %d pair(s) reset to pending", res.store, len(res.bad))
    return len(res.bad)


def recorded_audio_digest(checksum: str) -> str:
    """The ``audio:`` part of a pair's recorded checksum ("" where none was recorded)."""
    return next((part[6:] for part in checksum.split() if part.startswith("audio:")), "")


def audio_matches(checksum: str, audio: np.ndarray) -> bool | None:
    """Whether ``audio`` matches the ``audio:`` part of a recorded checksum (None: none
    recorded); cheap, for export and report, which read the audio anyway."""
    from hpc_nst.batch.writer import digest

    recorded = recorded_audio_digest(checksum)
    return recorded == digest(audio) if recorded else None


def check_audio(info: StoreInfo, pair: Any, skip_bad: bool) -> bool:
    """False (with a warning) for a pair whose audio fails its checksum when ``skip_bad``;
    without it such a pair stops the export or report (it would publish corrupted data)."""
    from hpc_nst.errors import StoreError

    if pair.unreadable.startswith("its checksum"):
        message = f"{info.path}: pair {pair.pair_id}: {pair.unreadable}"
    elif pair.unreadable:
        message = (f"{info.path}: pair {pair.pair_id}: its data cannot be read "
                   f"({pair.unreadable})")
    elif pair.audio is None or audio_matches(pair.checksum, pair.audio) is not False:
        return True
    else:
        message = (f"{info.path}: pair {pair.pair_id}: its audio does not match the checksum "
                   "written with it (corrupted or missing chunk)")
    if not skip_bad:
        raise StoreError(f"{message}; run hpc-nst verify {info.path} --repair and rerun the "
                         "batch, or pass --skip-bad to leave such pairs out")
    log.warning("%s; left out (--skip-bad)", message)
    return False
