"""Ordering pairs in the store and cutting them into shard-aligned tasks.

The store's pair axis is cut into shards of ``pairs_per_task`` consecutive pairs; a task is
exactly one shard (only its pending pairs), so no two tasks ever write the same shard. Inside a
task, pairs are run as batches of at most ``batch_size`` pairs sharing one effective
configuration (the seed may differ: it is per pair), one ``run_method`` call per batch.

Store order: valid pairs grouped by configuration (in order of first appearance), then by
content length, longest first (similar lengths share a batch, so less padding is computed, and
the longest tasks start first); invalid rows last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hpc_nst.batch.manifest import Pair, group_key
from hpc_nst.config import JobConfig


@dataclass(frozen=True)
class Batch:
    """Pairs (store indices) optimised together in one ``run_method`` call."""

    cfg: JobConfig
    indices: tuple[int, ...]


@dataclass(frozen=True)
class Task:
    """The pending pairs of one shard, as batches; ``start:stop`` is the shard's pair range."""

    shard: int
    start: int
    stop: int
    batches: tuple[Batch, ...]

    @property
    def indices(self) -> list[int]:
        return [i for b in self.batches for i in b.indices]

    @property
    def whole_shard(self) -> bool:
        """True when every pair of the shard is in this task (one block write suffices)."""
        return len(self.indices) == self.stop - self.start


def store_order(pairs: Sequence[Pair]) -> list[int]:
    """Positions into ``pairs`` (manifest order) in the order the store lays them out."""
    groups: dict[str, int] = {}
    by_digest: dict[str, str] = {}  # effective digest -> group key (hashing configs is slow)
    keys: dict[int, tuple] = {}
    for i, p in enumerate(pairs):
        if p.error is None and p.cfg is not None:
            if p.digest not in by_digest:
                by_digest[p.digest] = group_key(p.cfg)
            g = groups.setdefault(by_digest[p.digest], len(groups))
            keys[i] = (0, g, -p.content_samples, p.line)
        else:
            keys[i] = (1, 0, 0, p.line)
    return sorted(range(len(pairs)), key=keys.__getitem__)


def shard_ranges(n_pairs: int, pairs_per_task: int) -> list[range]:
    """The pair range of every shard (the last one may be short)."""
    if pairs_per_task < 1:
        raise ValueError("pairs_per_task must be >= 1")
    return [range(s, min(s + pairs_per_task, n_pairs)) for s in range(0, n_pairs, pairs_per_task)]


def make_tasks(
    todo: Sequence[int],
    cfgs: Sequence[JobConfig | None],
    n_pairs: int,
    pairs_per_task: int,
    batch_size: int,
) -> list[Task]:
    """Tasks for the store indices in ``todo`` (``cfgs[i]`` is pair i's effective config).

    Each task holds the ``todo`` pairs of one shard; within it, consecutive pairs with equal
    configuration (seed aside) are cut into batches of at most ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    by_shard: dict[int, list[int]] = {}
    for i in sorted(set(todo)):
        if not 0 <= i < n_pairs:
            raise IndexError(f"pair index {i} outside the store (0..{n_pairs - 1})")
        by_shard.setdefault(i // pairs_per_task, []).append(i)
    tasks = []
    key_cache: dict[int, str] = {}
    for shard, members in sorted(by_shard.items()):
        groups: dict[str, list[int]] = {}
        for i in members:
            cfg = cfgs[i]
            if cfg is None:
                raise ValueError(f"pair index {i} has no configuration (invalid row)")
            key = key_cache.setdefault(id(cfg), group_key(cfg))
            groups.setdefault(key, []).append(i)
        batches = [
            Batch(cfgs[idx[0]], tuple(idx[k:k + batch_size]))  # type: ignore[arg-type]
            for idx in groups.values()
            for k in range(0, len(idx), batch_size)
        ]
        start = shard * pairs_per_task
        tasks.append(Task(shard, start, min(start + pairs_per_task, n_pairs), tuple(batches)))
    return tasks
