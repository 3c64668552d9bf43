"""The worker process and what it runs on: its batch job, device name and peak memory (for
the store's accounting), glibc's allocator tuned for torch, and each task's log records kept
apart from those of a task running beside it (sent back to the driver).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import math
import os
import threading
from collections.abc import Iterator

#: Environment variables naming the batch job a worker runs in, by scheduler.
JOB_ID_VARS = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")


def scheduler_job() -> str:
    """The batch job this process runs in (``SLURM_JOB_ID``, ...), or ``local``."""
    for var in JOB_ID_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return "local"


@functools.lru_cache(maxsize=8)
def device_name(device: str) -> str:
    """A GPU's product name, or the CPU's model name."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return "CPU: " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return "CPU: " + (platform.processor() or platform.machine())


def peak_reset(device: str) -> None:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def peak_mb(device: str) -> float:
    """Peak memory since :func:`peak_reset`: allocated CUDA memory (the device's, so with
    two tasks running at once on a worker, both tasks' batches), or (CPU) the worker
    process's peak resident set size so far."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, OSError):  # pragma: no cover
        return math.nan


#: The capture of the task a thread works for (``emit`` runs in the thread that logs). A
#: thread-local, not thread ids: a new thread often gets the id of one that has ended.
_OWNER = threading.local()


class LogCapture(logging.Handler):
    """Keeps the log records of one task, to send back to the driver: those of the thread
    that runs it and of the threads it adopts (its prefetch thread), not those of another
    task running beside it on the same worker."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[int, str]] = []

    def adopt(self) -> None:
        """Count the calling thread's records as this task's (until another task adopts it)."""
        _OWNER.capture = self

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_OWNER, "capture", None) is self:
            self.records.append((record.levelno, record.getMessage()))


_LEVEL_LOCK = threading.Lock()
_level_users, _level_saved = 0, logging.NOTSET  # running tasks; the level to restore after


@contextlib.contextmanager
def capturing() -> Iterator[LogCapture]:
    """Capture this task's ``hpc_nst`` records from INFO up; the logger's level is lowered
    while any task runs and restored when the last one ends (tasks may overlap)."""
    global _level_users, _level_saved
    root, capture = logging.getLogger("hpc_nst"), LogCapture()
    capture.adopt()
    with _LEVEL_LOCK:
        if _level_users == 0:
            _level_saved = root.level
            if root.getEffectiveLevel() > logging.INFO:
                root.setLevel(logging.INFO)
        _level_users += 1
        root.addHandler(capture)
    try:
        yield capture
    finally:
        _OWNER.capture = None  # dask reuses the thread for other tasks
        with _LEVEL_LOCK:
            root.removeHandler(capture)
            _level_users -= 1
            if _level_users == 0:
                root.setLevel(_level_saved)


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
