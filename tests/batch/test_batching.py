"""Automatic batch size: the choice, the memory fit, the padding bound, halving on OOM."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from hpc_nst.batch import batching, worker
from hpc_nst.batch.results import PairSpec
from hpc_nst.cli import main
from hpc_nst.engine import device as device_mod

FIXED = device_mod.FIXED_BYTES


@pytest.mark.parametrize("lengths", [[257] * 10, [800, 790, 700, 600, 300, 290, 100, 90, 20],
                                     list(range(1000, 0, -37)), [5], [100, 1000, 100, 1000]])
@pytest.mark.parametrize("cap", [1, 3, 64])
def test_split_by_padding_bounds_padding_and_size(lengths, cap):
    groups = batching.split_by_padding(lengths, cap)
    assert [i for g in groups for i in g] == list(range(len(lengths)))  # all, once, in order
    for g in groups:
        assert 1 <= len(g) <= cap
        assert len(g) == 1 or batching.padding_share([lengths[i] for i in g]) <= 0.15
    if cap == 64 and len(set(lengths)) == 1:
        assert len(groups) == 1  # equal lengths never cut below the cap


def test_mixed_lengths_sorted_longest_first_waste_little():
    rng = np.random.default_rng(0)
    lengths = sorted(rng.integers(100, 2000, 500).tolist(), reverse=True)  # as tasks order
    groups = batching.split_by_padding(lengths, 64)
    padded = sum(max(lengths[i] for i in g) * len(g) for g in groups)
    assert 1 - sum(lengths) / padded < 0.15
    assert np.mean([len(g) for g in groups]) > 30  # and batches stay large (41.7 measured)


def test_resolve_batch_size(monkeypatch):
    assert batching.resolve_batch_size("7") == (7, "as asked")
    assert batching.resolve_batch_size("auto", "cpu")[0] == 4
    assert batching.resolve_batch_size("auto", "cuda")[0] == 64
    n, why = batching.resolve_batch_size("auto", "auto", "slurm", None)
    assert n == 64 and "free memory" in why
    assert batching.resolve_batch_size("auto", "auto", "slurm", 0)[0] == 4
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert batching.resolve_batch_size("auto", "auto", "local", None)[0] == 4


def test_fit_batch_follows_free_memory(monkeypatch):
    per_item = device_mod.estimate_bytes(1, 257, 257, 16) - FIXED
    for free_items in (1, 10, 100):
        monkeypatch.setattr(device_mod, "available_bytes",
                            lambda dev, n=free_items: int((n * per_item + FIXED) / 0.7) + 16)
        assert device_mod.fit_batch(257, 257, 16, torch.device("cpu")) == free_items
    monkeypatch.setattr(device_mod, "available_bytes", lambda dev: 0)
    assert device_mod.fit_batch(257, 257, 16, torch.device("cpu")) == 1


def test_estimate_bytes_covers_what_one_step_keeps(tiny):
    """The memory model behind the fit is an upper bound of the tensors one optimisation step
    saves for its backward pass (measured with saved-tensor hooks, as on any device)."""
    from hpc_nst.models.alexnet import CONV_LAYERS, AudioAlexNet

    net = AudioAlexNet(width=16)
    for frames in (64, 257):
        x = torch.randn(2, 1, 257, frames, requires_grad=True)
        saved: dict[int, int] = {}  # storage -> bytes (a tensor saved twice counts once)

        def pack(t: torch.Tensor, saved: dict[int, int] = saved) -> torch.Tensor:
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            feats = net.features(x, CONV_LAYERS)
            grams = [torch.einsum("bcft,bdft->bcd", f, f) for f in feats.values()]
            loss = sum(g.sum() for g in grams)
        loss.backward()
        est = device_mod.estimate_bytes(2, 257, frames, 16) - FIXED
        kept = sum(saved.values())  # 27 MiB at 2 x 257 frames; the estimate 48 MiB
        assert kept <= est, (frames, kept, est)
        assert kept > est / 3  # and not absurdly loose


def _items(n: int, seconds: float = 0.3):
    rng = np.random.default_rng(0)
    return [(PairSpec(i, f"p{i}", "c", "s", 0),
             rng.standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1,
             rng.standard_normal(int(seconds * 16000)).astype(np.float32) * 0.1)
            for i in range(n)]


def test_out_of_memory_halves_the_batch_and_is_logged(tiny, monkeypatch, caplog):
    from hpc_nst.engine import methods

    sizes = []
    real = methods.run_method

    def limited(contents, styles, cfg, **kw):  # noqa: ANN001, ANN003, ANN202
        sizes.append(len(contents))
        if len(contents) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(contents, styles, cfg, **kw)

    monkeypatch.setattr(methods, "run_method", limited)
    monkeypatch.setattr(worker, "_OOM_LIMIT", {})
    with caplog.at_level(logging.WARNING, logger="hpc_nst"):
        results = worker._run_batch(tiny, _items(8), "cpu", 0)
    assert sizes == [8, 4, 2, 2, 4, 2, 2]  # halved, never down to single pairs
    assert [r.index for r in results] == list(range(8)) and all(r.error is None for r in results)
    assert "ran out of memory; halving it (4 + 4)" in caplog.text
    assert worker._OOM_LIMIT["cpu"] > 0  # remembered for the next batches


def test_a_halved_batch_runs_after_the_failed_steps_memory_is_freed(tiny, monkeypatch):
    """The halves run once the exception (whose traceback holds the failed step's tensors)
    is gone: run inside the except block they found that memory still taken."""
    import weakref

    from hpc_nst.engine import methods

    held: list[weakref.ref] = []
    alive_at_retry = []
    real = methods.run_method

    def limited(contents, styles, cfg, **kw):  # noqa: ANN001, ANN003, ANN202
        alive_at_retry.extend(r() is not None for r in held)
        if len(contents) > 2:
            step_memory = torch.ones(1000)  # what a failed step leaves in its frames
            held.append(weakref.ref(step_memory))
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(contents, styles, cfg, **kw)

    monkeypatch.setattr(methods, "run_method", limited)
    monkeypatch.setattr(worker, "_OOM_LIMIT", {})
    results = worker._run_batch(tiny, _items(8), "cpu", 0)
    assert all(r.error is None for r in results)
    assert held and not any(alive_at_retry)


def test_the_memory_limit_an_oom_taught_is_found_under_the_resolved_device(tiny, monkeypatch):
    """A task asked for device "auto" stored the limit under "auto" and looked it up under
    "cuda": never used. The task now runs under the resolved name."""
    assert worker._resolved("auto") == str(device_mod.pick_device("auto"))
    assert worker._resolved("cpu") == "cpu"


def test_device_batches_fit_memory_and_padding_on_a_gpu(tiny, monkeypatch, caplog):
    """On a GPU (faked: the planning is host code), a batch is cut to what fits."""
    monkeypatch.setattr(worker, "_OOM_LIMIT", {})
    monkeypatch.setattr(device_mod, "pick_device", lambda d: torch.device("cuda"))
    per_item = device_mod.estimate_bytes(1, 257, 31, tiny.model.width) - FIXED  # 0.3 s
    monkeypatch.setattr(device_mod, "available_bytes",
                        lambda dev: int((3 * per_item + FIXED) / 0.7) + 16)
    items = _items(4, 0.3) + _items(3, 0.1)
    with caplog.at_level(logging.INFO, logger="hpc_nst"):
        groups = worker.device_batches(tiny, items, "cuda")
    assert [len(g) for g in groups] == [3, 1, 3]  # memory: 3 of the longest; then lengths
    assert "batch of 7 pairs run as 3+1+3 pairs" in caplog.text
    # two tasks at a time on the worker: each gets half that memory (1.5 of the longest)
    assert [len(g) for g in worker.device_batches(tiny, items, "cuda", slots=2)] == [1] * 7
    monkeypatch.setattr(device_mod, "pick_device", torch.device)
    assert len(worker.device_batches(tiny, items, "cpu")) == 1  # the CPU: left as it is


def test_cli_batch_size_auto_printed_and_bad_values_refused(tmp_path, capsys):
    from tests.batch.conftest import TINY

    sets = [x for s in TINY for x in ("--set", s)]
    demo = "manifests/demo.csv"
    assert main(["run", demo, "-o", str(tmp_path / "s.zarr"), "--batch-size", "0", *sets]) == 2
    assert "--batch-size '0': give a whole number >= 1, or auto" in capsys.readouterr().err
    assert main(["run", demo, "-o", str(tmp_path / "s.zarr"), "--device", "cpu", "--dry-run",
                 *sets]) == 0
    assert "batch size 4 (auto, CPU workers" in capsys.readouterr().out
