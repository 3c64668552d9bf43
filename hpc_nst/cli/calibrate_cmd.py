"""``hpc-nst calibrate``: measure a job's cost on this device for ``run --dry-run``."""

from __future__ import annotations

import argparse
from pathlib import Path

from hpc_nst.cli.args import device_arg
from hpc_nst.cli.transfer_cmd import add_job_arguments
from hpc_nst.config import load_job, parse_overrides


def register(sub: argparse._SubParsersAction) -> None:
    from hpc_nst.batch.cost import DEFAULT_FILE

    p = sub.add_parser(
        "calibrate", help="measure a job's cost per batch on this device (for run --dry-run)",
        description="Time short runs of the job (--iterations) on synthetic pairs of --seconds "
                    "for each batch size, and store ms per iteration, features and Griffin-Lim "
                    "time per batch in the calibration file, keyed by device name and job "
                    "(iteration counts and seeds aside). Run it once per device type and job.")
    add_job_arguments(p)
    p.add_argument("--device", default="auto", type=device_arg, metavar="auto|cpu|cuda[:N]",
                   help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4], metavar="B")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch threads while measuring (default on a CPU: what each task of "
                   "a local run gets, one per task; the dry run's times are per task)")
    p.add_argument("--seconds", type=float, default=None,
                   help="synthetic pair length (default 2.56; not with --manifest)")
    p.add_argument("--manifest", type=Path, metavar="CSV",
                   help="time real pairs of this manifest instead of synthetic ones (the "
                        "per-pair methods' time depends on the notes, not only the length)")
    p.add_argument("--pairs", type=int, default=8, metavar="N",
                   help="pairs of --manifest to time, spread over it (default 8)")
    p.add_argument("--iterations", type=int, default=20,
                   help="optimisation iterations timed per batch (default 20)")
    p.add_argument("-o", "--output", type=Path, default=DEFAULT_FILE, metavar="FILE",
                   help=f"calibration file to update (default {DEFAULT_FILE})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from hpc_nst.batch.cost import load_file, manifest_pairs, measure, save
    from hpc_nst.batch.worker_process import device_name
    from hpc_nst.engine.device import pick_device
    from hpc_nst.errors import UsageError
    from hpc_nst.fsutil import check_output_file

    if args.iterations < 1 or min(args.batch_sizes) < 1 or args.pairs < 1 or \
            (args.threads is not None and args.threads < 1):
        raise UsageError("--iterations, --batch-sizes, --pairs and --threads must be positive")
    if args.manifest is not None and args.seconds is not None:
        raise UsageError("--seconds: not with --manifest (its pairs have their own lengths)")
    seconds = 2.56 if args.seconds is None else args.seconds
    if not 0.05 <= seconds <= 600:  # (also NaN and inf)
        raise UsageError(f"--seconds {seconds}: give a pair length from 0.05 to 600 s")
    check_output_file(args.output, "-o", "the calibration file's name", "calibration.json")
    load_file(args.output)  # one that is not a calibration file: said now, not after the work
    cfg = load_job(args.job, parse_overrides(args.overrides))
    pairs = None if args.manifest is None else manifest_pairs(args.manifest, cfg, args.pairs)
    dev = str(pick_device(args.device))
    name = device_name(dev)
    threads = args.threads
    if threads is None and not dev.startswith("cuda"):
        from hpc_nst.batch.cluster import ClusterOptions, local_layout

        threads = local_layout(ClusterOptions(gpus=0)).threads
    if threads is not None:
        torch.set_num_threads(threads)
    results = measure(cfg, dev, args.batch_sizes, seconds, args.iterations, pairs)
    save(args.output, name, cfg, results)
    from hpc_nst.engine.methods.base import optimises

    if pairs is None:
        timed_on = f"{seconds} s pair"
        caveat = ("" if optimises(cfg) else " (no optimisation; timed on synthetic tones: real "
                  "notes can take several times longer, so time real pairs with --manifest)")
    else:
        frames = next(iter(results.values())).frames
        timed_on = f"{frames * cfg.stft.hop_length / cfg.stft.sample_rate:.2f} s pair"
        caveat = (f" (timed on {len(pairs)} pair(s) of {args.manifest}, scaled to their "
                  "median length)")
    print(f"{name} ({dev}, {torch.get_num_threads()} torch thread(s)), job {cfg.method}"
          + (f" ({cfg.optim.iterations} iterations)" if optimises(cfg) else "") + caveat + ":")
    for b, c in results.items():
        pair_s = (c.features_s + c.fixed_s + cfg.optim.iterations * c.ms_per_iteration / 1000
                  + cfg.griffin_lim.iterations * c.gl_ms_per_iteration / 1000) / b
        rate = f"{3600 / pair_s:.0f} pairs/h" if pair_s > 0 else "too fast to time"
        if c.ms_per_iteration > 0:
            print(f"  batch {b}: {c.ms_per_iteration:.2f} ms per iteration, features "
                  f"{c.features_s:.3f} s, Griffin-Lim {c.gl_ms_per_iteration:.2f} ms per "
                  f"iteration -> {pair_s:.2f} s per {timed_on} ({rate})")
        else:  # a per-pair method: no iterations
            print(f"  batch {b}: {pair_s:.3f} s per {timed_on} ({rate})")
    warmup = max(c.warmup_s for c in results.values())
    print(f"  and once per worker process, its first pair: {warmup:.2f} s more (loading the "
          "model and the method's assets; the dry run adds it per worker)")
    print(f"saved to {args.output}")
    return 0
