"""Store order and task splitting: tasks are shard-aligned, batches share one configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_nst.batch.manifest import Pair, group_key
from hpc_nst.batch.runner import pairs_per_task
from hpc_nst.batch.tasks import make_tasks, shard_ranges, store_order
from hpc_nst.config import apply_overrides


def _pair(line: int, cfg, samples: int, error: str | None = None) -> Pair:
    return Pair(line=line, pair_id=f"p{line}", content="c", style="s", target="",
                content_path=Path("c"), style_path=Path("s"), target_path=None, overrides=(),
                cfg=cfg, digest=cfg.digest() if cfg else "", content_samples=samples,
                style_samples=samples, error=error)


def test_store_order_groups_configs_longest_first_invalid_last(tiny):
    heavy = apply_overrides(tiny, {"style_weight": "50"})
    seeded = apply_overrides(tiny, {"seed": "9"})  # same group as tiny
    pairs = [_pair(2, tiny, 100), _pair(3, heavy, 500), _pair(4, None, -1, "bad"),
             _pair(5, seeded, 900), _pair(6, tiny, 300), _pair(7, heavy, 200)]
    order = store_order(pairs)
    assert [pairs[i].line for i in order] == [5, 6, 2, 3, 7, 4]


@pytest.mark.parametrize(("n", "ppt", "batch"), [(1, 1, 1), (10, 4, 4), (10, 4, 3), (37, 8, 2),
                                                 (5, 16, 4)])
def test_tasks_never_share_a_shard(tiny, n, ppt, batch):
    other = apply_overrides(tiny, {"style_weight": "3"})
    cfgs = [tiny if i % 3 else other for i in range(n)]
    todo = [i for i in range(n) if i % 5 != 4]
    tasks = make_tasks(todo, cfgs, n, ppt, batch)
    ranges = shard_ranges(n, ppt)
    seen = set()
    for t in tasks:
        assert t.shard not in seen
        seen.add(t.shard)
        assert (t.start, t.stop) == (ranges[t.shard].start, ranges[t.shard].stop)
        assert all(t.start <= i < t.stop for i in t.indices)
        for b in t.batches:
            assert 1 <= len(b.indices) <= batch
            assert len({group_key(cfgs[i]) for i in b.indices}) == 1
            assert group_key(b.cfg) == group_key(cfgs[b.indices[0]])
    assert sorted(i for t in tasks for i in t.indices) == todo


def test_whole_shard_and_partial_tasks(tiny):
    cfgs = [tiny] * 6
    full, part = make_tasks([0, 1, 2, 4], cfgs, 6, 3, 2)
    assert full.whole_shard and not part.whole_shard
    assert [b.indices for b in full.batches] == [(0, 1), (2,)]
    assert part.indices == [4] and (part.start, part.stop) == (3, 6)


def test_bad_arguments(tiny):
    with pytest.raises(ValueError):
        make_tasks([0], [tiny], 1, 1, 0)
    with pytest.raises(IndexError):
        make_tasks([3], [tiny], 1, 1, 1)
    with pytest.raises(ValueError, match="invalid row"):
        make_tasks([0], [None], 1, 1, 1)
    with pytest.raises(ValueError):
        shard_ranges(3, 0)


def test_pairs_per_task_keeps_large_stores_to_a_few_thousand_tasks():
    assert pairs_per_task(10, 4, None) == 4
    assert pairs_per_task(1000, 4, None) == 4  # small: one batch per task, for parallelism
    assert pairs_per_task(1000, 1, None) == 1
    assert pairs_per_task(8000, 4, None) == 16  # >= 16 pairs per task once 64 tasks remain
    assert pairs_per_task(8000, 1, None) == 16
    assert pairs_per_task(8000, 64, None) == 64  # a GPU batch is task enough
    assert pairs_per_task(100_000, 4, None) == 32  # 3125 tasks
    assert pairs_per_task(100_000, 1, None) == 16
    assert pairs_per_task(100_000, 4, 1) == 4
    assert pairs_per_task(10**7, 64, None) == 512  # 8 batches at most
    for batch in (5, 12, 15):  # batch sizes that do not divide 16: still >= 64 tasks
        for n in (1024, 2000, 5000):
            ppt = pairs_per_task(n, batch, None)
            assert ppt % batch == 0 and (-(-n // ppt) >= 64 or ppt == batch), (batch, n, ppt)
            assert ppt >= 16 or n < -(-16 // batch) * batch * 64, (batch, n, ppt)
