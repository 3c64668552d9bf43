"""What runs on a dask worker: one task = the pending pairs of one shard.

For each batch: load the audio (a pair whose audio cannot be used fails alone), call
:func:`hpc_nst.engine.methods.run_method` once; when the batch fails as a whole (out of memory,
an exception) each pair is retried alone, so one bad pair never fails the others. The bulk data
of the pairs that succeeded is then written to the task's own shards, and a
:class:`PairOutcome` per pair goes back to the driver, which records status and metadata.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Iterator

import numpy as np

from hpc_nst.batch.results import PairOutcome, PairResult, PairSpec, TaskResult, TaskSpec
from hpc_nst.batch.worker_process import (
    LogCapture,
    capturing,
    device_name,
    peak_mb,
    peak_reset,
    scheduler_job,
    tune_malloc,
)
from hpc_nst.batch.writer import write_task_data
from hpc_nst.config import JobConfig
from hpc_nst.fsutil import DISK_ERRNOS

__all__ = ["PairOutcome", "PairSpec", "TaskResult", "TaskSpec", "run_task"]
log = logging.getLogger(__name__)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text}"
    return text if type(exc).__name__ in ("TransferError", "AudioError") else \
        f"{type(exc).__name__}: {text}"


def _resolved(device: str) -> str:
    """``device`` with ``auto`` resolved (``cuda`` or ``cpu``)."""
    from hpc_nst.engine.device import pick_device

    return str(pick_device(device))


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


#: Share of the GPU memory this process can use (free + its allocator's) that the batches
#: of one worker's running tasks may take together.
HEADROOM = 0.7

#: Per device: half the smallest batch work (pairs x frames) that ran out of memory here;
#: later batches on this worker stay under it.
_OOM_LIMIT: dict[str, int] = {}


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


def _frames(items: list[tuple[PairSpec, np.ndarray, np.ndarray]], cfg: JobConfig) -> list[int]:
    from hpc_nst.audio.spectrogram import num_frames

    return [max(num_frames(len(c), cfg.stft), num_frames(len(s), cfg.stft))
            for _, c, s in items]


def device_batches(cfg: JobConfig, items: list[tuple[PairSpec, np.ndarray, np.ndarray]],
                   device: str, slots: int = 1
                   ) -> list[list[tuple[PairSpec, np.ndarray, np.ndarray]]]:
    """On a GPU, a batch cut to what fits in its share of the memory (``slots`` tasks run at
    once on the worker) and where padding would exceed
    :data:`~hpc_nst.batch.batching.MAX_PADDING`; elsewhere the batch as it is (the CPU engine
    optimises each pair alone)."""
    import torch

    from hpc_nst.batch.batching import split_by_padding
    from hpc_nst.engine.device import fit_batch, pick_device
    from hpc_nst.models.checkpoint import network_width

    dev = pick_device(device)
    if dev.type != "cuda" or len(items) < 2:
        return [items]
    lengths = _frames(items, cfg)
    cap = fit_batch(cfg.stft.n_bins, max(lengths), network_width(cfg), torch.device(dev),
                    headroom=HEADROOM, share=max(1, slots))
    if str(dev) in _OOM_LIMIT:
        cap = max(1, min(cap, _OOM_LIMIT[str(dev)] // max(lengths)))
    groups = split_by_padding(lengths, cap)
    if len(groups) > 1:
        log.info("batch of %d pairs run as %s pairs (memory fits %d of the longest; padding "
                 "kept under the bound)", len(items), "+".join(str(len(g)) for g in groups),
                 cap)
    return [[items[i] for i in g] for g in groups]


def _run_batch(cfg: JobConfig, items: list[tuple[PairSpec, np.ndarray, np.ndarray]],
               device: str, batch: int) -> list[PairResult]:
    """One :class:`PairResult` per pair. A batch that runs out of memory is halved (and the
    worker remembers the limit); one that fails otherwise is retried pair by pair, so one bad
    pair never fails the others."""
    from hpc_nst.engine.methods import run_method

    try:
        results = run_method([c for _, c, _ in items], [s for _, _, s in items], cfg,
                             seeds=[p.seed for p, _, _ in items], device=device)
    except Exception as exc:  # OOM, TransferError, anything: isolate the culprit
        failure, oom = _describe(exc), _is_oom(exc)
    else:
        # batch_pairs: the pairs whose timings are shared (on the CPU each pair runs alone)
        return [PairResult(p.index, None if r.error else r, r.error, batch, r.group_pairs)
                for (p, _, _), r in zip(items, results)]
    # Out of the except block: the exception's traceback (which holds the failed step's
    # tensors) is gone, so its memory is freed before any retry.
    _free_memory()
    if len(items) == 1:
        log.warning("pair %s failed: %s", items[0][0].pair_id, failure)
        return [PairResult(items[0][0].index, None, failure, batch, 1)]
    if oom:
        half = len(items) // 2
        work = len(items) * max(_frames(items, cfg))
        _OOM_LIMIT[str(device)] = min(_OOM_LIMIT.get(str(device), work), work // 2)
        log.warning("batch of %d pairs (%s ...) ran out of memory; halving it (%d + %d)",
                    len(items), items[0][0].pair_id, half, len(items) - half)
        return _run_batch(cfg, items[:half], device, items[0][0].index) + \
            _run_batch(cfg, items[half:], device, items[half][0].index)
    log.warning("batch of %d pairs (%s ...) failed (%s); retrying each pair alone",
                len(items), items[0][0].pair_id, failure)
    out: list[PairResult] = []
    for item in items:
        out.extend(_run_batch(cfg, [item], device, batch))
    return out


#: Event topic of a task starting to run: one event per execution, the task's key as message.
ATTEMPT_TOPIC = "hpc-nst-attempt"


def _announce_attempt() -> None:
    """Tell the driver (through the scheduler's events) that this task starts running: it
    counts a pair's attempts from these, executions that died with their worker included."""
    try:
        from distributed import get_worker

        worker = get_worker()
        worker.log_event(ATTEMPT_TOPIC, str(worker.get_current_task()))
    except Exception:  # noqa: BLE001 - not on a dask worker (run_task called directly)
        return


def run_task(spec: TaskSpec) -> TaskResult:
    """Run every batch of ``spec``, write the successful pairs, return one outcome per pair
    (and the log records of the task, which the driver logs)."""
    _announce_attempt()
    with capturing() as capture:
        outcomes = _run_task(spec, capture)
    return TaskResult(outcomes, capture.records)


Loaded = tuple[list[tuple[PairSpec, np.ndarray, np.ndarray]], dict[int, str],
               dict[int, dict[str, float]]]


def _refuse_silence(path: object, audio: np.ndarray) -> None:
    """A silent input would be stored as a "done" output of silence or noise, worthless in a
    dataset: its pair fails, naming the file."""
    from hpc_nst.audio.io import AudioError, is_silent

    if is_silent(audio):  # (load_audio gives at least one frame's samples)
        raise AudioError(f"{path}: silent after mixing to mono (peak "
                         f"{float(np.abs(audio).max()):.1e}; a stereo "
                         "file whose channels cancel reads so too): give a recording with "
                         "sound, or leave the pair out of the manifest")


def _load_batch(cfg: JobConfig, batch: tuple[PairSpec, ...]) -> Loaded:
    """Decode and resample a batch's audio: (items, error per unusable pair, timings)."""
    from hpc_nst.audio.io import AudioError, load_audio

    stft, started = cfg.stft, time.time()
    items, errors, meta = [], {}, {}
    for p in batch:
        t0 = time.perf_counter()
        try:
            role = "content"
            c = load_audio(p.content, stft.sample_rate, min_samples=stft.win_length)
            _refuse_silence(p.content, c)
            role = "style"
            s = load_audio(p.style, stft.sample_rate, min_samples=stft.win_length)
            _refuse_silence(p.style, s)
        except AudioError as exc:
            log.warning("pair %s skipped: %s %s", p.pair_id, role, exc)
            errors[p.index] = f"{role} {exc}"
            continue
        items.append((p, c, s))
        meta[p.index] = {"load_s": time.perf_counter() - t0, "started_at": started}
    return items, errors, meta


def _prefetched(batches: tuple[tuple[JobConfig, tuple[PairSpec, ...]], ...],
                capture: LogCapture) -> Iterator[tuple[JobConfig, Loaded]]:
    """Each batch with its audio, the next batch decoded in a thread while this one runs
    (host work overlapped with the device's); that thread's records are the task's."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="hpc-nst-prefetch",
                            initializer=capture.adopt) as pool:
        ahead = pool.submit(_load_batch, *batches[0]) if batches else None
        for k, (cfg, _) in enumerate(batches):
            loaded = ahead.result()  # type: ignore[union-attr]
            if k + 1 < len(batches):
                ahead = pool.submit(_load_batch, *batches[k + 1])
            yield cfg, loaded


def _run_task(spec: TaskSpec, capture: LogCapture) -> list[PairOutcome]:
    import torch

    tune_malloc()
    if spec.threads > 0 and torch.get_num_threads() != spec.threads:
        torch.set_num_threads(spec.threads)
    host, job = socket.gethostname(), scheduler_job()
    # the device as run ("auto" resolved): the memory limit an OOM taught is looked up, and
    # the peak memory read, under the name it was stored with
    device = _resolved(_device(spec.device))
    outcomes: dict[int, PairOutcome] = {}
    done: dict[int, PairResult] = {}
    meta: dict[int, dict[str, float]] = {}
    for cfg, (items, errors, timings) in _prefetched(spec.batches, capture):
        for index, error in errors.items():
            outcomes[index] = PairOutcome(index, error, host=host)
        meta.update(timings)
        if not items:
            continue
        peak_reset(device)
        for sub in device_batches(cfg, items, device, spec.slots):
            for res in _run_batch(cfg, sub, device, sub[0][0].index):
                if res.result is None:
                    outcomes[res.index] = PairOutcome(
                        res.index, res.error, host=host, batch=res.batch,
                        batch_pairs=res.batch_pairs, scheduler_job=job)
                else:
                    done[res.index] = res
        peak = peak_mb(device)
        for p, _, _ in items:
            meta[p.index]["peak_memory_mb"] = peak
    t0 = time.perf_counter()
    try:
        too_long, records, sums = write_task_data(spec, {i: r.result for i, r in done.items()})
    except OSError as exc:  # a full or read-only disk: each pair fails saying so (the task
        if exc.errno not in DISK_ERRNOS:  # raising printed a traceback per attempt)
            raise
        reason = (f"could not write its results to the store ({os.strerror(exc.errno)}: "
                  f"{exc.filename or spec.store}); nothing of it was recorded: free space "
                  "and rerun with --retry-failed")
        log.warning("shard of %d pair(s): %s", len(spec.pairs), reason)
        for index in done:
            outcomes[index] = PairOutcome(index, reason, host=host, scheduler_job=job)
        return [outcomes[p.index] for p in spec.pairs]
    write_s, finished = time.perf_counter() - t0, time.time()
    for index, pr in done.items():
        res = pr.result
        if index in too_long:
            outcomes[index] = PairOutcome(index, too_long[index], host=host, scheduler_job=job)
            continue
        extra = meta[index]
        peak = extra.pop("peak_memory_mb", math.nan)
        timings = dict(res.timings) | extra | {"write_s": write_s, "finished_at": finished}
        outcomes[index] = PairOutcome(
            index, None,
            frames=(res.content.shape[1], res.style.shape[1], res.init.shape[1],
                    res.output.shape[1]),
            samples=len(res.audio), records=records.get(index, 0),
            spectral_convergence=float(res.spectral_convergence), timings=timings,
            device=str(res.device), host=host, batch=pr.batch, batch_pairs=pr.batch_pairs,
            scheduler_job=job, device_name=device_name(str(res.device)), peak_memory_mb=peak,
            checksum=sums.get(index, ""))
    return [outcomes[p.index] for p in spec.pairs]
