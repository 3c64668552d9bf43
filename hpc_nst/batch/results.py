"""What travels between the driver, the workers and the writer: typed task and result records.

The driver builds a :class:`TaskSpec` per shard; a worker returns a :class:`TaskResult` (one
:class:`PairOutcome` per pair, and the log records it made, which the driver re-emits through
its own logging); the writer takes the worker's :class:`PairResult` values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hpc_nst.config import JobConfig

if TYPE_CHECKING:
    from hpc_nst.engine.transfer import TransferResult


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
    slots: int = 1  # tasks its worker runs at once (they share the device's memory)
    #: inode of the store's folder when the task was made (the same on every node of a shared
    #: filesystem, unlike the device number): a store put in its place is not written into
    store_inode: int | None = None

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
    batch: int = -1  # id of the batch the pair ran in (unique within a run's tasks)
    batch_pairs: int = 0  # pairs optimised together with this one (itself included)
    scheduler_job: str = ""  # the batch job the worker ran in (SLURM_JOB_ID...), or "local"
    device_name: str = ""  # e.g. "NVIDIA H100 80GB HBM3" or the CPU model
    peak_memory_mb: float = math.nan  # peak device memory of the pair's batch (CPU: worker RSS)
    checksum: str = ""  # of the bulk data as written (hpc_nst.batch.writer.pair_checksum)


@dataclass(frozen=True)
class PairResult:
    """A worker's result for one pair: the transfer, or why it failed."""

    index: int
    result: TransferResult | None
    error: str | None
    batch: int
    batch_pairs: int


@dataclass(frozen=True)
class TaskResult:
    """Everything a task returns: one outcome per pair and the worker's log records."""

    outcomes: list[PairOutcome]
    log: list[tuple[int, str]] = field(default_factory=list)  # (logging level, message)
