"""The one API for reading a batch store: :func:`store_info` (open and describe),
:func:`pairs_table` (the small per-pair columns as a DataFrame), :func:`iter_pairs` (every pair
with its audio and loss curves, in bounded memory) and :func:`read_spectrograms` (one pair's
spectrograms); :attr:`StoreInfo.terms` names the loss curves. ``status``, ``export`` and
``report`` all read through it.

Built on :func:`hpc_nst.batch.store.open_root` / :func:`~hpc_nst.batch.store.read_column` and the
documented layout: small per-pair arrays are read one metadata block (8192 pairs, rounded to
whole shards) at a time, the bulk arrays (``audio``, ``loss``) a few whole shards at a time (at
most :data:`READ_BYTES` of audio), and spectrograms only for the pairs that get a figure.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpc_nst.batch import store as st
from hpc_nst.batch.locations import files_stamp, stamps_differ

if TYPE_CHECKING:
    import pandas as pd

#: Per-pair accounting arrays (absent from stores of earlier releases).
ACCOUNTING = ("scheduler_job", "device_name", "peak_memory_mb", "device_s", "wall_s")
READ_BYTES = 64 * 2**20  # audio read per bulk read, at most (plus one shard)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreInfo:
    """What a report needs to know about one store."""

    path: Path
    label: str  # the job's name in tables: the store's file name without ``.zarr``
    method: str  # nst, nst-classifier, content-copy, ... (a checkpoint path: nst-<stem>)
    job: dict[str, Any]
    n_pairs: int
    pairs_per_task: int
    sample_rate: int
    hop_length: int
    manifest: Path | None  # the manifest the store was created from (absolute)
    terms: tuple[str, ...] = ()  # the loss curves' names (the ``term`` coordinate)
    attrs: dict[str, Any] = field(default_factory=dict)  # the root attributes
    metadata_columns: tuple[str, ...] = ()  # the manifest's extra columns (``metadata``)


@dataclass
class PairData:
    """One pair as stored; ``audio``/``losses`` only for done pairs."""

    index: int
    pair_id: str
    status: str
    error: str
    content: Path | None
    style: Path | None
    target: Path | None
    paths: tuple[str, str, str]  # as written in the manifest
    seed: int
    device: str
    attempts: int
    timings: dict[str, float] = field(default_factory=dict)
    batch_pairs: int = 1
    spectral_convergence: float = math.nan  # NaN where no Griffin-Lim ran (records == 0)
    records: int = 0
    losses: np.ndarray | None = None  # (terms, records)
    audio: np.ndarray | None = None
    metadata: dict[str, str] = field(default_factory=dict)  # the manifest's extra columns
    accounting: dict[str, Any] = field(default_factory=dict)  # :data:`ACCOUNTING` values
    checksum: str = ""  # recorded with the data ("" in stores of earlier releases)
    unreadable: str = ""  # why its bulk data could not be read (a corrupted chunk), if so


def method_name(job: dict[str, Any]) -> str:
    """A short method label: the job's method; ``nst`` (random features, the preset),
    ``nst-classifier`` (the shipped classifier's features) or ``nst-<checkpoint stem>``."""
    method = str(job.get("method", "nst"))
    if method != "nst":
        return method
    model = str(job.get("model", {}).get("name", "random"))
    if model == "random":
        return "nst"
    return "nst-classifier" if model in ("classifier", "default") else f"nst-{Path(model).stem}"


def store_info(path: str | Path, label: str | None = None) -> StoreInfo:
    """Open ``path`` (a batch store) and describe it."""
    path = Path(path)
    root = st.open_root(path)
    st.check_arrays(root)
    attrs = st.root_attrs(root)
    job = attrs.get("job", {})
    manifest = attrs.get("manifest", {}).get("path")
    name = label or (path.name[:-5] if path.name.endswith(".zarr") else path.name)
    return StoreInfo(
        path=path, label=name, method=method_name(job), job=job,
        n_pairs=int(root["pair"].shape[0]),
        pairs_per_task=int(attrs.get("layout", {}).get("pairs_per_task", 1)),
        sample_rate=int(attrs.get("sample_rate", 16000)),
        hop_length=int(attrs.get("hop_length", 160)),
        manifest=Path(manifest) if manifest else None,
        terms=tuple(str(t) for t in st.read_column(root, "term")), attrs=attrs,
        metadata_columns=tuple(str(c) for c in st.read_column(root, "metadata_column"))
        if "metadata_column" in root else ())


def metadata_names(info: StoreInfo) -> dict[str, str]:
    """Metadata column -> its name in tables: itself, or ``meta_<name>`` where it would clash
    with one of the store's own columns (``meta_<name>_2``, ... where that is another metadata
    column's name: no column ever hides another)."""
    own = {*TABLE_COLUMNS, "timing", *(str(t) for t in st.TIMINGS), "pair_id"}
    taken = own | set(info.metadata_columns)
    out: dict[str, str] = {}
    for c in info.metadata_columns:
        if c not in own:
            out[c] = c
            continue
        name, k = f"meta_{c}", 2
        while name in taken:
            name, k = f"meta_{c}_{k}", k + 1
        taken.add(name)
        out[c] = name
    return out


#: Small per-pair arrays in :func:`pairs_table` (2-D ones are expanded by their coordinate).
TABLE_COLUMNS = ("pair", "row", "status", "error", "attempts", "content_path", "style_path",
                 "target_path", "seed", "device", "host", "samples", "records",
                 "spectral_convergence", "batch", "batch_pairs", "timings", *ACCOUNTING)


def _read_rows(arr: Any, r0: int, r1: int, width: int | None,
               broken: dict[int, str]) -> np.ndarray:
    """Rows ``r0:r1`` of a bulk array (the first ``width`` columns), in one read; where a chunk
    cannot be decoded (corrupted on disk), row by row, the unreadable rows zero and named in
    ``broken`` (offset -> error) instead of failing every pair of the read."""
    cols = slice(None) if width is None else slice(0, width)
    try:
        return np.asarray(arr[r0:r1, cols])
    except Exception:  # noqa: BLE001 - zarr and its codecs raise several kinds on bad data
        rows = []
        for r in range(r0, r1):
            try:
                rows.append(np.asarray(arr[r, cols]))
            except Exception as exc:  # noqa: BLE001
                broken[r - r0] = f"{type(exc).__name__}: {exc}"
                rows.append(None)
        shape = next((x.shape for x in rows if x is not None), None)
        if shape is None:
            shape = (arr.shape[1], *arr.shape[2:]) if width is None else (width,)
        return np.stack([np.zeros(shape, arr.dtype) if x is None else x for x in rows])


def pairs_table(info: StoreInfo) -> pd.DataFrame:
    """One row per pair (store order): ids, paths, status (as names), errors, attempts,
    device, host, batch id and size, one ``<timing>`` column per timing, and the manifest's
    metadata columns (named by :func:`metadata_names`)."""
    import pandas as pd

    root = st.open_root(info.path)
    cols: dict[str, Any] = {}
    for name in TABLE_COLUMNS:
        if not st.has(root, name):  # stores of earlier releases: no explicit batches
            continue
        data = st.read_column(root, name)
        if name == "timings":
            for j, t in enumerate(str(t) for t in st.read_column(root, "timing")):
                cols[t] = data[:, j]
        else:
            cols[name] = data
    if info.metadata_columns:
        meta = st.read_column(root, "metadata")
        for j, name in enumerate(metadata_names(info).values()):
            cols[name] = meta[:, j]
    status = cols["status"]
    cols["status"] = _status_names(status)
    started = np.where(status == st.DONE, cols.get("started_at", np.nan), np.nan)
    cols["batch_pairs"] = _batch_pairs(started, cols.get("batch_pairs"), 0,
                                       max(info.pairs_per_task, 1))
    return pd.DataFrame(cols)


class InputChanges:
    """Done pairs of a store whose content or style file changed since they were computed
    (their recorded ``input_stamp``; nothing for a store of an earlier release): what
    ``report`` measures and ``export`` names for them is of the files as they are now."""

    def __init__(self, info: StoreInfo, inputs_dir: Path | None = None) -> None:
        root = st.open_root(info.path)  # (inputs read from a copy elsewhere: not checked,
        # a copy's files have new modification times)
        self.stamps = st.read_column(root, "input_stamp") \
            if inputs_dir is None and st.has(root, "input_stamp") else None
        self.seen: dict[Path, str] = {}
        self.ids: list[str] = []

    def check(self, pair: PairData) -> bool:
        """Whether ``pair`` is done and its inputs changed since (then counted)."""
        if self.stamps is None or pair.status != "done":
            return False
        now = files_stamp((pair.content, pair.style), self.seen)
        if not stamps_differ(self.stamps[pair.index], now):
            return False
        self.ids.append(pair.pair_id)
        return True

    def message(self) -> str:
        return (f"{len(self.ids)} done pair(s) were computed from input files that changed "
                f"since (size or modification time; e.g. {', '.join(self.ids[:3])}): the "
                "content and style named for them are not the audio they were made from; "
                "rerun hpc-nst run with --recompute-changed")


def _resolve(base: Path | None, rel: str) -> Path | None:
    if not rel:
        return None
    p = Path(rel)
    return p if p.is_absolute() or base is None else base / p


def _status_names(codes: np.ndarray) -> np.ndarray:
    """Status codes as names: ``"lost"`` where the status chunk is missing (st.LOST), ``"?"``
    for a code this version does not know."""
    names = np.asarray((*st.STATUS_NAMES, "lost", "?"), dtype=object)
    codes = np.asarray(codes, dtype=np.int64)
    known = (codes >= 0) & (codes < len(st.STATUS_NAMES))
    return names[np.where(known, codes, np.where(codes == st.LOST, -2, -1))]


def _batch_pairs(started: np.ndarray, recorded: np.ndarray | None, first: int,
                 ppt: int) -> np.ndarray:
    """Pairs per batch of pairs ``first, first + 1, ...``: as recorded by the worker, or (0:
    a store made before it was recorded) the pairs of the same shard sharing ``started_at``."""
    started = np.asarray(started, dtype=np.float64)
    out = np.ones(len(started), np.int64)
    finite = np.flatnonzero(np.isfinite(started))
    if finite.size:
        keys = np.stack([((first + finite) // ppt).astype(np.float64), started[finite]], axis=1)
        _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
        out[finite] = counts[inverse.ravel()]
    return out if recorded is None else np.where(recorded > 0, recorded, out)


def iter_pairs(info: StoreInfo, inputs_dir: Path | None = None, with_audio: bool = True,
               only: Sequence[int] | None = None, with_losses: bool = True
               ) -> Iterator[PairData]:
    """Every pair of the store in store order (or those at the indices ``only``), reading one
    block at a time; blocks without a wanted pair are not read at all.

    Relative input paths resolve against ``inputs_dir`` (default: the manifest's folder).
    """
    root = st.open_root(info.path)
    base = inputs_dir or (info.manifest.parent if info.manifest else None)
    ppt = max(info.pairs_per_task, 1)
    block = max(ppt, (st.META_CHUNK // ppt) * ppt)
    names = ("pair", "status", "error", "content_path", "style_path", "target_path", "seed",
             "device", "attempts", "samples", "records", "spectral_convergence", "timings")
    timing_names = [str(t) for t in st.read_column(root, "timing")]
    t_started = timing_names.index("started_at") if "started_at" in timing_names else None
    audio_arr, loss_arr = st.array(root, "audio"), st.array(root, "loss")
    # Bulk reads of several shards at once (zarr fetches them concurrently), at most
    # READ_BYTES of audio per read.
    chunk = int(audio_arr.chunks[1])  # zarr decodes whole inner chunks
    per_pair = 4 * chunk * -(-int(audio_arr.shape[1]) // chunk) if with_audio else 1
    window = max(ppt, min(block, (READ_BYTES // per_pair) // ppt * ppt))
    wanted = np.ones(info.n_pairs, bool)
    if only is not None:
        wanted = np.zeros(info.n_pairs, bool)
        wanted[np.asarray(only, dtype=np.int64)] = True
    for b0 in range(0, info.n_pairs, block):
        b1 = min(b0 + block, info.n_pairs)
        if not wanted[b0:b1].any():
            continue
        meta = {n: st.read_rows(root, n, b0, b1) for n in names}
        acct = {n: st.read_rows(root, n, b0, b1) for n in ACCOUNTING if st.has(root, n)}
        sums = st.read_rows(root, "checksum", b0, b1) if st.has(root, "checksum") \
            else None
        extra = st.read_rows(root, "metadata", b0, b1) if info.metadata_columns else None
        explicit = st.read_rows(root, "batch_pairs", b0, b1) if st.has(root, "batch_pairs") \
            else None
        for w0 in range(b0, b1, window):
            w1 = min(w0 + window, b1)
            if not wanted[w0:w1].any():
                continue
            status = meta["status"][w0 - b0:w1 - b0]
            status_names = _status_names(status)
            done = status == st.DONE
            samples = meta["samples"][w0 - b0:w1 - b0]
            audio = loss = None
            broken: dict[int, str] = {}
            if (done & wanted[w0:w1]).any():
                if with_losses:
                    loss = _read_rows(loss_arr, w0, w1, None, broken)
                if with_audio:
                    audio = _read_rows(audio_arr, w0, w1, int(samples[done].max()), broken)
            timings = meta["timings"][w0 - b0:w1 - b0]
            started = timings[:, t_started] if t_started is not None else \
                np.full(w1 - w0, np.nan)
            started = np.where(done, started, np.nan)
            batch = _batch_pairs(started, None if explicit is None else
                                 explicit[w0 - b0:w1 - b0], w0, ppt)
            for k in range(w1 - w0):
                i = w0 + k
                if not wanted[i]:
                    continue
                j = i - b0
                paths = tuple(str(meta[f"{r}_path"][j]) for r in ("content", "style", "target"))
                pair = PairData(
                    index=i, pair_id=str(meta["pair"][j]),
                    status=status_names[k],
                    error=str(meta["error"][j]),
                    content=_resolve(base, paths[0]), style=_resolve(base, paths[1]),
                    target=_resolve(base, paths[2]), paths=paths,  # type: ignore[arg-type]
                    seed=int(meta["seed"][j]), device=str(meta["device"][j]),
                    attempts=int(meta["attempts"][j]),
                    timings={n: float(v) for n, v in zip(timing_names, timings[k])},
                    batch_pairs=int(batch[k]),
                    metadata={} if extra is None else
                    dict(zip(info.metadata_columns, (str(v) for v in extra[j]))),
                    accounting={n: (v[j].item() if hasattr(v[j], "item") else str(v[j]))
                                for n, v in acct.items()},
                    checksum="" if sums is None else str(sums[j]))
                if done[k]:
                    pair.records = int(meta["records"][j])
                    # only an optimised spectrogram went through Griffin-Lim (the pair
                    # recorded losses); the 0.0 other methods store would read as "perfect"
                    pair.spectral_convergence = (float(meta["spectral_convergence"][j])
                                                 if pair.records > 0 else math.nan)
                    pair.unreadable = broken.get(k, "")
                    if sums is not None and not pair.checksum and not pair.unreadable:
                        # every done pair of a store with checksums has one: its chunk is lost
                        pair.unreadable = ("its checksum is missing, so its audio cannot be "
                                           "checked (a lost file of the 'checksum' array)")
                    pair.losses = loss[k] if loss is not None and not pair.unreadable else None
                    if audio is not None and not pair.unreadable:
                        pair.audio = audio[k, : int(samples[k])]
                yield pair


def read_spectrograms(info: StoreInfo, index: int) -> dict[str, np.ndarray]:
    """``{kind: (bins, frames)}`` log-magnitude spectrograms of one done pair."""
    root = st.open_root(info.path)
    frames = root["frames"][index]
    kinds = [str(k) for k in st.read_column(root, "kind")]
    longest = int(max(frames)) if len(frames) else 0
    try:
        block = np.asarray(st.array(root, "spectrogram")[index, :, :, :longest])
    except st.StoreError:
        raise
    except Exception as exc:  # noqa: BLE001 - a chunk that does not decode (a disk fault)
        raise st.StoreError(f"{info.path}: the spectrograms of pair {index} cannot be read "
                            f"({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                            "hpc-nst verify STORE lists the damage") from None
    return {k: block[j, :, : int(frames[j])] for j, k in enumerate(kinds)}

