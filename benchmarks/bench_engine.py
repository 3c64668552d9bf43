"""Engine throughput: ms per optimisation iteration, FLOPs per iteration, achieved GFLOP/s.

    python benchmarks/bench_engine.py [--batch-sizes 1 4 16] [--iterations 10] [--width W]
        [--device cpu|cuda] [--precision fp32|bf16] [--profile] [--concurrent K] [--rounds R]

FLOPs are counted by torch's FlopCounterMode over one forward+backward of the objective (the
network's convolutions and matmuls). The reference is this machine's measured throughput of a
plain 3x3 convolution (128 -> 256 channels at 64x64, forward), the best case for the CPU.
A batch is one forward/backward pass (the GPU's path; on a CPU the engine runs each pair alone,
i.e. batch 1). ``--precision bf16`` runs the step as the engine does with ``optim.precision =
"bf16"`` (bfloat16 autocast) and measures the reference convolution under the same autocast
too, so "of ref" compares like with like; the fp32 reference is printed beside it.
``--concurrent K`` (CPU) runs K independent steps at once in K threads with one torch thread
each, as a CPU worker's K task slots do (``hpc-nst run``'s default: one task per core), and
compares their summed rate with the reference convolution on all of torch's threads.
``--rounds R`` (default 1) measures the reference and each step R times, interleaved (reference,
steps, reference, steps, ...), and prints the median of each column and the median of the
per-round "of ref" ratios: on a shared or frequency-scaling machine one reference taken once
can be off by a third (docs/performance.md), and a ratio of two numbers taken seconds apart
inherits it; the spread over the rounds is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from hpc_nst.config import load_job
from hpc_nst.engine.device import pick_device
from hpc_nst.engine.objective import Objective
from hpc_nst.engine.transfer import precision_context
from hpc_nst.models.checkpoint import resolve_model


def conv_reference_gflops(device: torch.device, repeats: int = 10,
                          precision: str = "fp32") -> float:
    """GFLOP/s of a 3x3 conv, 128 -> 256 channels on a 64x64 map, batch 8."""
    conv = torch.nn.Conv2d(128, 256, 3, padding=1).to(device)
    x = torch.randn(8, 128, 64, 64, device=device)
    flops = 2 * 8 * 256 * 128 * 9 * 64 * 64
    with torch.no_grad(), precision_context(precision, device):
        for _ in range(2):
            conv(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            conv(x)
        _sync(device)
    return flops * repeats / (time.perf_counter() - t0) / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_step(batch: int, width: int | None, device: torch.device,
              precision: str = "fp32") -> tuple[Callable[[], None], int]:
    """One optimisation step of the engine's objective on ``batch`` 2.56 s pairs, and the
    network's width."""
    overrides = {"model": "random"} if width else {}
    if width:
        overrides["width"] = str(width)
    cfg = load_job(overrides=overrides)
    model = resolve_model(cfg, device)
    frames = 257
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(batch, 257, frames, generator=gen).to(device) * 3
    style = torch.rand(batch, 257, frames, generator=gen).to(device) * 3
    lengths = torch.full((batch,), frames, device=device)
    objective = Objective.build(model, cfg.loss, content, lengths, style, lengths)
    # the engine's start: Gaussian noise of the job's std
    x = torch.randn(batch, 257, frames, generator=gen) * cfg.optim.noise_std
    x = x.to(device).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)

    def step() -> None:  # one pass over the batch (a GPU's path; a CPU runs each pair alone)
        opt.zero_grad(set_to_none=True)
        with precision_context(precision, device):
            total = objective(x)[0]
        total.float().sum().backward()
        opt.step()

    return step, model.width


def bench(
    batch: int,
    iterations: int,
    width: int | None,
    device: torch.device,
    profile: bool = False,
    precision: str = "fp32",
) -> dict:
    step, model_width = make_step(batch, width, device, precision)
    return _timed(step, batch, iterations, model_width, device, profile)


def bench_concurrent(streams: int, iterations: int, width: int | None,
                     precision: str = "fp32") -> dict:
    """``streams`` one-pair steps at once, each in its own thread with one torch thread."""
    import threading

    device = torch.device("cpu")
    torch.set_num_threads(1)
    steps = [make_step(1, width, device, precision) for _ in range(streams)]
    counter = FlopCounterMode(display=False)
    with counter:
        steps[0][0]()
    flops = counter.get_total_flops()
    for step, _ in steps:
        step()

    def run(step: Callable[[], None]) -> None:
        for _ in range(iterations):
            step()

    threads = [threading.Thread(target=run, args=(step,)) for step, _ in steps]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ms = 1000 * wall / iterations
    return {"batch": streams, "width": steps[0][1], "ms_per_iter": ms,
            "ms_per_pair_iter": ms / streams, "gflop_per_iter": flops / 1e9,
            "gflops": streams * flops / (ms / 1000) / 1e9}


def _timed(
    step: Callable[[], None],
    batch: int,
    iterations: int,
    width: int,
    device: torch.device,
    profile: bool,
) -> dict:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iterations):
        step()
    _sync(device)
    ms = 1000 * (time.perf_counter() - t0) / iterations
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(iterations):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return {
        "batch": batch,
        "width": width,
        "ms_per_iter": ms,
        "ms_per_pair_iter": ms / batch,
        "gflop_per_iter": flops / 1e9,
        "gflops": flops / (ms / 1000) / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument(
        "--width", type=int, help="random model of this width (default: the job's default model)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--profile", action="store_true", help="print torch profiler's top ops")
    parser.add_argument("--rounds", type=int, default=1, metavar="R",
                        help="interleave R reference and step measurements; print medians")
    parser.add_argument("--concurrent", type=int, default=0, metavar="K",
                        help="CPU: K one-pair steps at once, one torch thread each (the "
                        "'batch' column is then K streams)")
    args = parser.parse_args()
    device = pick_device(args.device)
    if args.concurrent and (device.type != "cpu" or args.profile):
        parser.error("--concurrent measures CPU task slots: no --device cuda, no --profile")
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give 1 or more")
    if args.rounds > 1 and args.profile:
        parser.error("--profile prints one table per measurement: use it with --rounds 1")
    torch_threads = torch.get_num_threads()

    def reference(precision: str) -> float:
        torch.set_num_threads(torch_threads)  # --concurrent leaves one thread per stream
        return conv_reference_gflops(device, precision=precision)

    runs = ([lambda: bench_concurrent(args.concurrent, args.iterations, args.width,
                                      args.precision)] if args.concurrent else
            [lambda b=b: bench(b, args.iterations, args.width, device, args.profile,
                               args.precision) for b in args.batch_sizes])
    refs32, refs, results = [], [], [[] for _ in runs]
    for _ in range(args.rounds):
        refs32.append(reference("fp32"))
        refs.append(refs32[-1] if args.precision == "fp32" else reference(args.precision))
        for k, measure in enumerate(runs):
            results[k].append(measure())
    ref32, ref = statistics.median(refs32), statistics.median(refs)
    print(f"device {device}, torch {torch.__version__}, threads {torch_threads}, "
          f"precision {args.precision}, rounds {args.rounds}")
    spread = f" (rounds: {min(refs):.1f}-{max(refs):.1f})" if args.rounds > 1 else ""
    print(f"reference 3x3 conv (128->256 @ 64x64): {ref:.1f} GFLOP/s in {args.precision}"
          f" ({ref32:.1f} in fp32){spread}")
    print(
        f"{'batch':>5} {'width':>5} {'ms/iter':>9} {'ms/pair':>9} {'GFLOP/iter':>10} "
        f"{'GFLOP/s':>8} {'of ref':>7}"
    )
    for rounds in results:
        r = {key: statistics.median(x[key] for x in rounds) for key in rounds[0]}
        r |= {"batch": rounds[0]["batch"], "width": rounds[0]["width"]}  # not averaged
        ratios = [x["gflops"] / rf for x, rf in zip(rounds, refs)]
        tail = (f"   (of ref per round: {min(ratios):.0%}-{max(ratios):.0%})"
                if args.rounds > 1 else "")
        print(
            f"{r['batch']:>5} {r['width']:>5} {r['ms_per_iter']:>9.1f} "
            f"{r['ms_per_pair_iter']:>9.1f} {r['gflop_per_iter']:>10.2f} "
            f"{r['gflops']:>8.1f} {statistics.median(ratios):>7.0%}{tail}"
        )

if __name__ == "__main__":
    main()
