"""The driver's side of the store: recording task outcomes into the small per-pair arrays.

The driver is the only writer of these arrays. It keeps them in memory and writes back the
chunks that changed (at most every ``flush_interval`` seconds and at the end), ``status`` last,
so a pair reads as done only once its bulk data and its metadata are on disk.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import zarr

from hpc_nst.batch.results import PairOutcome
from hpc_nst.batch.store import (
    DONE,
    FAILED,
    OPTIONAL_ARRAYS,
    RESULT_ARRAYS,
    TIMINGS,
    has,
    read_column,
)
from hpc_nst.metrics.run import COMPUTE_TIMINGS


class Recorder:
    """In-memory copy of the driver-written result arrays of an open store."""

    def __init__(self, root: zarr.Group, guard: Callable[[], None] | None = None):
        """``guard`` is called before every write (it raises when the store is gone)."""
        self.guard = guard
        names = [n for n in RESULT_ARRAYS if n not in OPTIONAL_ARRAYS or has(root, n)]
        self.data = {name: read_column(root, name) for name in names}  # (damage: said here)
        self.arrays = {name: root[name] for name in names}
        self.chunk = self.arrays["status"].chunks[0]
        self.dirty: set[int] = set()

    @property
    def status(self) -> np.ndarray:
        return self.data["status"]

    def record(self, outcome: PairOutcome, attempts: int = 1) -> None:
        """Record a worker's outcome for one pair (``attempts`` added to its count)."""
        i = outcome.index
        d = self.data
        d["attempts"][i] += attempts
        d["host"][i] = outcome.host
        if "scheduler_job" in d:
            d["scheduler_job"][i] = outcome.scheduler_job
        if outcome.error:
            d["error"][i] = outcome.error
            d["status"][i] = FAILED
        else:
            d["error"][i] = ""
            d["device"][i] = outcome.device
            d["frames"][i] = outcome.frames
            d["samples"][i] = outcome.samples
            d["records"][i] = outcome.records
            d["spectral_convergence"][i] = outcome.spectral_convergence
            d["timings"][i] = [outcome.timings.get(k, math.nan) for k in TIMINGS]
            t = outcome.timings
            for k in ("started_at", "finished_at"):
                if k in d:
                    d[k][i] = t.get(k, math.nan)
            if "checksum" in d:
                d["checksum"][i] = outcome.checksum
            if "device_s" in d:
                compute = [t.get(k, math.nan) for k in COMPUTE_TIMINGS]
                d["device_s"][i] = sum(x for x in compute if math.isfinite(x)) / \
                    max(outcome.batch_pairs, 1)
                d["wall_s"][i] = t.get("finished_at", math.nan) - t.get("started_at", math.nan)
                d["device_name"][i] = outcome.device_name
                d["peak_memory_mb"][i] = outcome.peak_memory_mb
            if "batch" in d:
                d["batch"][i] = outcome.batch
                d["batch_pairs"][i] = outcome.batch_pairs
            d["status"][i] = DONE
        self.dirty.add(i // self.chunk)

    def fail(self, index: int, message: str, attempts: int = 0) -> None:
        """Record a failure the driver itself saw (invalid row, task lost)."""
        self.data["attempts"][index] += attempts
        self.data["error"][index] = message
        self.data["status"][index] = FAILED
        self.dirty.add(index // self.chunk)

    def flush(self) -> None:
        """Write every changed chunk; ``status`` is written last."""
        if not self.dirty:
            return
        chunks = sorted(self.dirty)
        for name in self.arrays:  # in RESULT_ARRAYS order, which ends with "status"
            arr, data = self.arrays[name], self.data[name]
            if self.guard is not None:  # before each array: a store that moves away during
                self.guard()  # a flush gets at most one array's chunk re-created at its path
            for c in chunks:
                a, b = c * self.chunk, min((c + 1) * self.chunk, len(data))
                arr[a:b] = data[a:b]
        self.dirty.clear()

    def counts(self) -> dict[str, int]:
        s = self.status
        return {"done": int((s == DONE).sum()), "failed": int((s == FAILED).sum()),
                "pending": int(((s != DONE) & (s != FAILED)).sum())}
