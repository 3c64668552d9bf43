"""The worker function: per-pair failures never fail the batch; OOM splits the batch."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import hpc_nst.engine.methods as methods
from hpc_nst.batch import store as st
from hpc_nst.batch import store_creation as sc
from hpc_nst.batch.manifest import read_manifest
from hpc_nst.batch.tasks import store_order
from hpc_nst.batch.worker import PairSpec, TaskSpec, _run_batch, run_task

from .conftest import write_csv


def test_out_of_memory_batch_is_halved_down_to_pairs(tiny, monkeypatch, caplog):
    calls = []
    real = methods.run_method

    def fake(contents, styles, cfg, *, seeds=None, device=None, progress=None):
        calls.append(list(seeds))
        if len(contents) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        if seeds[0] == 2:
            raise MemoryError()
        return real(contents, styles, cfg, seeds=seeds, device=device)

    monkeypatch.setattr(methods, "run_method", fake)
    audio = np.sin(np.arange(4000) * 0.05).astype(np.float32)
    items = [(PairSpec(i, f"p{i}", "c", "s", seed), audio, audio) for i, seed in
             enumerate([1, 2, 3])]
    with caplog.at_level(logging.WARNING, logger="hpc_nst"):
        out = _run_batch(tiny, items, "cpu", batch=7)
    assert calls == [[1, 2, 3], [1], [2, 3], [2], [3]]  # halved, then halved again
    assert out[1].error.startswith("out of memory") and out[1].result is None
    assert out[0].error is None and out[2].error is None
    assert out[0].result.output.shape == (257, 1 + 4000 // 160)
    # each part is a batch of its own, named by its first pair's index
    assert [(r.batch, r.batch_pairs) for r in out] == [(0, 1), (1, 1), (2, 1)]
    # the fallback is logged, not silent
    assert any("ran out of memory; halving it (1 + 2)" in r.getMessage()
               for r in caplog.records)


def test_run_task_in_process(tmp_path, audio_dir, tiny):
    man = read_manifest(write_csv(audio_dir / "m.csv", "pair_id,content,style",
                                  ["ok,a.wav,b.wav", "trunc,truncated.flac,a.wav",
                                   "ok2,c.wav,nan.wav"]), tiny)
    order = store_order(man.pairs)
    frames, samples, records = sc.capacities(man, tiny)
    path = tmp_path / "w.zarr"
    sc.create_store(path, tiny, man, order, sc.Layout(3, 3, 3, frames, samples, records))
    pairs = tuple(PairSpec(i, man.pairs[k].pair_id, str(man.pairs[k].content_path),
                           str(man.pairs[k].style_path), 0) for i, k in enumerate(order))
    result = run_task(TaskSpec(str(path), 0, 0, 3, ((tiny, pairs),), "cpu", 1))
    outcomes = result.outcomes
    # the worker's log records travel back with the result (the driver logs them)
    assert any("truncated.flac" in msg for _, msg in result.log)
    by_id = {p.pair_id: o for p, o in zip(pairs, outcomes)}
    assert by_id["ok"].error is None and by_id["ok"].samples == 8000
    assert by_id["ok"].records == 4 and by_id["ok"].device == "cpu"
    assert by_id["ok"].batch_pairs == 1 and by_id["ok"].batch >= 0
    assert {"load_s", "optimise_s", "write_s", "started_at", "finished_at"} <= \
        set(by_id["ok"].timings)
    assert by_id["trunc"].error.startswith("content ") and "truncated.flac" in by_id["trunc"].error
    assert by_id["ok2"].error.startswith("style ") and "NaN" in by_id["ok2"].error
    root = st.open_root(path)
    i = [p.pair_id for p in pairs].index("ok")
    assert root["spectrogram"][i, 3].any() and root["audio"][i, :8000].any()
    j = [p.pair_id for p in pairs].index("trunc")
    assert not root["spectrogram"][j].any()  # nothing written for a failed pair


def test_tune_malloc_takes_effect_on_glibc() -> None:
    """dask's MALLOC_TRIM_THRESHOLD_ would otherwise map every activation afresh."""
    import platform

    from hpc_nst.batch.worker_process import tune_malloc

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert tune_malloc() is True and tune_malloc() is True


def test_overlapping_tasks_keep_their_own_log_records():
    """Two tasks running at once on one worker each send back their own records (and those of
    the thread they adopt for prefetching), and the logger's level comes back afterwards even
    when the first task to start ends last."""
    import logging
    import threading

    from hpc_nst.batch.worker_process import capturing

    log = logging.getLogger("hpc_nst.batch.worker")
    root = logging.getLogger("hpc_nst")
    before = root.level
    root.setLevel(logging.WARNING)
    a_in, b_done, results = threading.Event(), threading.Event(), {}

    def task_a():
        with capturing() as cap:
            log.info("a: first")
            helper = threading.Thread(target=lambda: (cap.adopt(), log.info("a: prefetch")))
            helper.start()
            helper.join()
            a_in.set()
            b_done.wait(5)
            log.info("a: last")
        results["a"] = [m for _, m in cap.records]

    def task_b():
        a_in.wait(5)
        with capturing() as cap:
            log.warning("b: only")
            # a thread B starts after A's helper ended (it may get that thread's id) is B's
            # only once B adopts it, and never A's
            stray = threading.Thread(target=lambda: log.warning("b: stray"))
            stray.start()
            stray.join()
            mine = threading.Thread(target=lambda: (cap.adopt(), log.warning("b: helper")))
            mine.start()
            mine.join()
        results["b"] = [m for _, m in cap.records]
        b_done.set()

    try:
        threads = [threading.Thread(target=task_a), threading.Thread(target=task_b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == {"a": ["a: first", "a: prefetch", "a: last"],
                           "b": ["b: only", "b: helper"]}
        assert root.level == logging.WARNING and not any(
            type(h).__name__ == "LogCapture" for h in root.handlers)
    finally:
        root.setLevel(before)
