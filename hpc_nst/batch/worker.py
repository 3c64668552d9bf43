"""What runs on a dask worker: one task = the pending pairs of one shard.

For each batch: load the audio (a pair whose audio cannot be used fails alone), call
:func:`hpc_nst.engine.methods.run_method` once; when the batch fails as a whole (out of memory,
an exception) each pair is retried alone, so one bad pair never fails the others. The bulk data
of the pairs that succeeded is then written to the task's own shards, and a
:class:`PairOutcome` per pair goes back to the driver, which records status and metadata.
"""

from __future__ import annotations

import ctypes
import math
import socket
import time
from dataclasses import dataclass, field

import numpy as np

from hpc_nst.config import JobConfig


@dataclass(frozen=True)
class PairSpec:
    """One pair as the worker needs it (paths resolved)."""

    index: int
    pair_id: str
    content: str
    style: str
    seed: int


@dataclass(frozen=True)
class TaskSpec:
    """One task: batches of pairs of the shard ``start:stop`` of the store at ``store``."""

    store: str
    shard: int
    start: int
    stop: int
    batches: tuple[tuple[JobConfig, tuple[PairSpec, ...]], ...]
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default

    @property
    def pairs(self) -> list[PairSpec]:
        return [p for _, batch in self.batches for p in batch]


@dataclass
class PairOutcome:
    """What the driver records for one pair."""

    index: int
    error: str | None
    frames: tuple[int, int, int, int] = (0, 0, 0, 0)
    samples: int = 0
    records: int = 0
    spectral_convergence: float = math.nan
    timings: dict[str, float] = field(default_factory=dict)
    device: str = ""
    host: str = ""


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text}"
    return text if type(exc).__name__ in ("TransferError", "AudioError") else \
        f"{type(exc).__name__}: {text}"


def _device(requested: str) -> str:
    """On a multi-GPU host (local cluster), spread workers over the GPUs by worker name."""
    import torch

    if requested != "auto" or not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        return requested
    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        return requested
    index = name if isinstance(name, int) else sum(map(ord, str(name)))
    return f"cuda:{index % torch.cuda.device_count()}"


def _free_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _run_batch(cfg: JobConfig, items: list[tuple[PairSpec, np.ndarray, np.ndarray]],
               device: str) -> dict[int, object]:
    """TransferResult or an error message per pair; a failing batch is split into pairs."""
    from hpc_nst.engine.methods import run_method

    try:
        results = run_method([c for _, c, _ in items], [s for _, _, s in items], cfg,
                             seeds=[p.seed for p, _, _ in items], device=device)
    except Exception as exc:  # OOM, TransferError, anything: isolate the culprit
        _free_memory()
        if len(items) == 1:
            return {items[0][0].index: _describe(exc)}
        out: dict[int, object] = {}
        for item in items:
            out.update(_run_batch(cfg, [item], device))
        return out
    return {p.index: (r.error if r.error else r) for (p, _, _), r in zip(items, results)}


_MALLOC_TUNED: bool | None = None
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def tune_malloc() -> bool:
    """Let glibc keep freed memory for reuse in this worker process; True if it took effect.

    dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also freezes
    glibc's mmap threshold at 128 KiB: every activation tensor is then mapped and unmapped
    afresh (page faults and zeroing). Measured: 143.7 ms per iteration at batch 4 against
    60.7 ms in a plain process. Raising both thresholds (to 32 MiB, glibc's maximum mmap
    threshold, and 256 MiB kept before trimming, per arena) restores the plain speed while
    freed memory still goes back to the system beyond that. Done once per process.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED is None:
        try:
            libc = ctypes.CDLL("libc.so.6")
            _MALLOC_TUNED = bool(libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)) and bool(
                libc.mallopt(M_TRIM_THRESHOLD, 256 * 2**20)
            )
        except (OSError, AttributeError):  # not glibc
            _MALLOC_TUNED = False
    return _MALLOC_TUNED


def run_task(spec: TaskSpec) -> list[PairOutcome]:
    """Run every batch of ``spec``, write the successful pairs, return one outcome per pair."""
    import torch

    from hpc_nst.audio.io import AudioError, load_audio

    tune_malloc()
    if spec.threads > 0 and torch.get_num_threads() != spec.threads:
        torch.set_num_threads(spec.threads)
    host = socket.gethostname()
    device = _device(spec.device)
    outcomes: dict[int, PairOutcome] = {}
    done: dict[int, object] = {}
    meta: dict[int, dict[str, float]] = {}
    for cfg, batch in spec.batches:
        stft = cfg.stft
        started = time.time()
        items = []
        for p in batch:
            t0 = time.perf_counter()
            try:
                role = "content"
                c = load_audio(p.content, stft.sample_rate, min_samples=stft.win_length)
                role = "style"
                s = load_audio(p.style, stft.sample_rate, min_samples=stft.win_length)
            except AudioError as exc:
                outcomes[p.index] = PairOutcome(p.index, f"{role} {exc}", host=host)
                continue
            items.append((p, c, s))
            meta[p.index] = {"load_s": time.perf_counter() - t0, "started_at": started}
        if not items:
            continue
        for index, res in _run_batch(cfg, items, device).items():
            if isinstance(res, str):
                outcomes[index] = PairOutcome(index, res, host=host)
            else:
                done[index] = res
    from hpc_nst.batch.writer import write_task_data

    t0 = time.perf_counter()
    too_long, records = write_task_data(spec, done)
    write_s, finished = time.perf_counter() - t0, time.time()
    for index, res in done.items():
        if index in too_long:
            outcomes[index] = PairOutcome(index, too_long[index], host=host)
            continue
        timings = dict(res.timings) | meta[index] | {"write_s": write_s, "finished_at": finished}
        outcomes[index] = PairOutcome(
            index, None,
            frames=(res.content.shape[1], res.style.shape[1], res.init.shape[1],
                    res.output.shape[1]),
            samples=len(res.audio), records=records.get(index, 0),
            spectral_convergence=float(res.spectral_convergence), timings=timings,
            device=str(res.device), host=host)
    return [outcomes[p.index] for p in spec.pairs]
