"""``hpc-nst run MANIFEST -o STORE.zarr``: a whole manifest on a dask cluster, resumable."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hpc_nst.cli.args import TERM_EXIT, device_arg, warn_unread
from hpc_nst.cli.transfer_cmd import add_job_arguments
from hpc_nst.config import load_job, parse_overrides

log = logging.getLogger(__name__)

def count_arg(least: int) -> Callable[[str], int]:
    """argparse type of a whole number >= ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= {least}")
        return value

    parse.__name__ = "count"  # argparse names the type in its messages
    return parse


def seconds_arg(text: str) -> float:
    """argparse type of a duration in seconds: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds >= 0")
    return value


seconds_arg.__name__ = "seconds"


def check_local_device(device: str, cluster: str) -> None:
    """Refuse a CUDA device for a local cluster on a machine without one (before any store is
    created); batch schedulers' workers have their own GPUs, so they are not checked here."""
    if cluster != "local" or not device.startswith("cuda"):
        return
    from hpc_nst.engine.device import pick_device
    from hpc_nst.errors import TransferError, UsageError

    try:
        pick_device(device)
    except TransferError as exc:
        raise UsageError(f"{exc}; use --device cpu or auto here, or a batch scheduler "
                         "(--cluster slurm, ...) whose workers have GPUs") from None


def register(sub: argparse._SubParsersAction) -> None:
    from hpc_nst.batch.cluster import CLUSTERS

    p = sub.add_parser(
        "run", help="run a CSV manifest of pairs into a Zarr store (local or batch cluster)",
        description="Run every content/style pair of MANIFEST (CSV: content,style[,pair_id,"
        "target,overrides]) into one Zarr store. Rerunning the same command resumes: pairs "
        "already done are skipped. Exit code 1 when any pair failed, 2 for invalid input.")
    p.add_argument("manifest", type=Path, help="CSV manifest (paths relative to its folder)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="STORE.zarr",
                   help="the Zarr store (created, or resumed when it exists)")
    add_job_arguments(p)
    p.add_argument("--batch-size", default="auto", metavar="B|auto",
                   help="pairs optimised together in one batch; auto (default): 4 on CPU "
                   "workers, on GPU workers up to 64, fitted by each worker to its free memory "
                   "and cut where padding would pass 15 %%")
    p.add_argument("--batches-per-task", type=count_arg(1), metavar="K",
                   help="batches per task (= store shard); default: automatic (one batch, "
                   "at least 16 pairs once 64 tasks remain, more above 2000 tasks)")
    p.add_argument("--skip-invalid", action="store_true",
                   help="record invalid manifest rows as failed and run the others")
    p.add_argument("--retry-failed", action="store_true", help="rerun pairs that failed")
    p.add_argument("--recompute-changed", action="store_true",
                   help="rerun done pairs whose input files changed since they were computed "
                        "(size or modification time; without it, a warning names them)")
    p.add_argument("--device", default="auto", type=device_arg, metavar="auto|cpu|cuda[:N]",
                   help="auto (default), cpu, cuda or cuda:N; cuda with the local cluster "
                   "needs a CUDA device on this machine")
    c = p.add_argument_group(
        "cluster", "Options left out fall back to the dask config jobqueue.<scheduler>.* "
        "(see slurm/jobqueue.yaml).")
    c.add_argument("--cluster", choices=CLUSTERS, default="local",
                   help="local (default), a batch scheduler via dask-jobqueue, or slurm-runner "
                   "(inside one allocation, under srun)")
    c.add_argument("--workers", type=count_arg(1), metavar="N",
                   help="local: worker processes (default: one per GPU, else 1); schedulers: "
                   "most worker jobs (default 1); at least 1")
    c.add_argument("--min-workers", type=count_arg(0), metavar="N",
                   help="fewest worker jobs kept by adaptive scaling (default 0)")
    c.add_argument("--gpus-per-worker", type=int, choices=(0, 1), dest="gpus",
                   help="1: each worker job gets one GPU (default for schedulers); 0: CPU only")
    for flag, helptext in (("--queue", "partition/queue"), ("--account", "account/project"),
                           ("--walltime", "walltime of a worker job"),
                           ("--memory", "memory per worker job, e.g. 32GB"),
                           ("--interface", "network interface of the workers, e.g. ib0"),
                           ("--local-directory", "node-local scratch directory")):
        c.add_argument(flag, help=helptext)
    c.add_argument("--cores", type=count_arg(1), help="CPU cores per worker job")
    c.add_argument("--tasks-per-worker", type=count_arg(1), metavar="N",
                   help="tasks a worker runs at once, its cores split between them (default: "
                   "2 on a GPU, so that one task's decoding and store write overlap the "
                   "other's GPU compute; a local CPU worker one per core; or the dask "
                   "configuration's hpc-nst.tasks-per-worker). CPU worker jobs of a batch "
                   "scheduler run one task per core: set --cores")
    c.add_argument("--job-extra", action="append", default=[], metavar="DIRECTIVE",
                   help="extra scheduler directive for worker jobs (repeatable)")
    c.add_argument("--scheduler-file", help="slurm-runner: scheduler file on a shared file "
                   "system (default: next to the store)")
    p.add_argument("--progress-interval", type=seconds_arg, default=10.0, metavar="S",
                   help="seconds between progress lines when not on a terminal (default 10)")
    p.add_argument("--quiet", action="store_true", help="only errors and the summary")
    p.add_argument("--grace", type=seconds_arg, default=None, metavar="S",
                   help="on Ctrl-C/SIGTERM: seconds to wait for running tasks to finish and "
                        "be saved (no new task starts; a second Ctrl-C stops at once; "
                        "default 60; after a SIGTERM inside a Slurm job, less: under its "
                        "KillWait, after which a cancelled job is killed)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate everything, print the plan, the worker job script and a "
                        "cost estimate, then exit without creating or submitting anything")
    p.add_argument("--calibration", type=Path, metavar="FILE|STORE.zarr",
                   help="cost model for --dry-run: a file written by hpc-nst calibrate "
                        "(default ~/.cache/hpc_nst/calibration.json) or an earlier store of "
                        "this job")
    p.set_defaults(func=run)


def print_summary(summary, out=None, limit: int = 20) -> None:  # noqa: ANN001
    """The end-of-run summary: counts, throughput and the failed pairs with their messages."""
    out = out or sys.stderr
    done_now = summary.done_now
    rate = done_now / summary.wall_s * 3600 if summary.wall_s > 0 and done_now else 0
    print(f"{summary.store}: {summary.total} pairs: {summary.done} done "
          f"({summary.skipped} already done before this run), {summary.failed} failed, "
          f"{summary.pending} pending; this run: {summary.ran} pairs ({done_now} done) in "
          f"{summary.wall_s:.1f} s" + (f" ({rate:.0f} pairs/h done)" if rate else ""), file=out)
    if summary.failures:
        print("failed pairs:", file=out)
        for pid, line, error in summary.failures[:limit]:
            print(f"  {pid} (manifest line {line}): {error}", file=out)
        if len(summary.failures) > limit:
            print(f"  ... and {len(summary.failures) - limit} more "
                  f"(hpc-nst status {summary.store} --failures all)", file=out)
        print("rerun with --retry-failed to try the failed pairs again", file=out)
    if summary.pending and not summary.interrupted:
        print("some pairs are still pending: rerun the same command to resume", file=out)


#: Seconds a stopped run waits for the tasks in hand (--grace).
DEFAULT_GRACE_S = 60.0
#: A second SIGTERM within this many seconds is the same request: ``scancel`` signals the
#: driver and the job script's trap forwards the signal again, which would otherwise count as
#: the "stop now" second interrupt and skip the grace wait for running tasks.
TERM_REPEAT_S = 2.0
_last_term = [-TERM_REPEAT_S]
_terminated: list[int] = [0]  # the signal that stopped the run (0: none, or Ctrl-C)
_term_seen = [False]  # a SIGTERM came (a kill follows, in a Slurm job after KillWait)


def _sigterm(signum: int, frame: object) -> None:
    """Batch systems send SIGTERM before killing: save and stop (as Ctrl-C). SIGUSR1 (from
    slurm/run.sbatch, its time limit near) the same, with the whole grace, unless a SIGTERM
    comes too (a repeat included: it still shortens the grace)."""
    if signum == signal.SIGTERM:
        _term_seen[0] = True
    now = time.monotonic()
    if now - _last_term[0] < TERM_REPEAT_S:
        return
    _last_term[0] = now
    _terminated[0] = signum
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    _terminated[0], _term_seen[0] = 0, False
    try:
        return _run(args)
    except KeyboardInterrupt:
        if not _terminated[0]:
            raise  # Ctrl-C: the CLI says so, exit code 130
        print(f"hpc-nst run: stopped by {signal.Signals(_terminated[0]).name}", file=sys.stderr)
        return TERM_EXIT


def _grace(asked: float | None, driver: bool = True) -> tuple[float, float]:
    """The grace for the tasks in hand after Ctrl-C or SIGUSR1, and after SIGTERM: ``--grace``
    for both, or 60 s, and inside a Slurm job after SIGTERM less, under its KillWait (the
    time between a cancelled job's SIGTERM and its SIGKILL: a plain scancel killed the driver
    in its grace, leaving no summary, the lock, and the task in hand lost)."""
    from hpc_nst.batch.submission import grace_within, slurm_kill_wait

    if asked is not None:
        return asked, asked
    kill_wait = slurm_kill_wait() if driver else None  # (other ranks of an allocation: none)
    if kill_wait is None or grace_within(kill_wait) >= DEFAULT_GRACE_S:
        return DEFAULT_GRACE_S, DEFAULT_GRACE_S
    term = grace_within(kill_wait)
    if driver:
        print(f"grace {term:g} s for the tasks in hand on SIGTERM (Slurm's KillWait is "
              f"{kill_wait} s; --grace sets it)", file=sys.stderr)
    return DEFAULT_GRACE_S, term


def _run(args: argparse.Namespace) -> int:
    from hpc_nst.batch.batching import resolve_batch_size
    from hpc_nst.batch.cluster import ClusterOptions, worker_job_script
    from hpc_nst.batch.runner import RunOptions, run_batch
    from hpc_nst.batch.submission import SUBMIT_COMMAND, check_options, preflight
    from hpc_nst.cli import UserError

    asked = str(args.batch_size)
    if asked != "auto" and not (asked.isdigit() and int(asked) >= 1):
        raise UserError(f"--batch-size {asked!r}: give a whole number >= 1, or auto")
    check_local_device(args.device, args.cluster)
    args.batch_size, why = resolve_batch_size(asked, args.device, args.cluster, args.gpus)
    overrides = parse_overrides(args.overrides)
    cfg = load_job(args.job, overrides)
    warn_unread(cfg, overrides)
    graces = [DEFAULT_GRACE_S, DEFAULT_GRACE_S]  # after Ctrl-C / SIGUSR1, after SIGTERM
    opts = RunOptions(batch_size=args.batch_size, batches_per_task=args.batches_per_task,
                      skip_invalid=args.skip_invalid, retry_failed=args.retry_failed,
                      recompute_changed=args.recompute_changed,
                      device=args.device, progress_interval=args.progress_interval,
                      quiet=args.quiet, batch_note=why,
                      grace_for=lambda: graces[1] if _term_seen[0] else graces[0])
    copts = ClusterOptions(
        kind=args.cluster, workers=args.workers, min_workers=args.min_workers, gpus=args.gpus,
        queue=args.queue, account=args.account, walltime=args.walltime, memory=args.memory,
        cores=args.cores, interface=args.interface, local_directory=args.local_directory,
        job_extra=args.job_extra, scheduler_file=args.scheduler_file,
        tasks_per_worker=args.tasks_per_worker)
    for warning in check_options(copts):
        log.warning(warning)
    if args.dry_run:
        return _dry_run(args, cfg, copts, why)
    # (in an allocation the driver is rank 1 of dask-jobqueue's SLURMRunner)
    driver = args.cluster != "slurm-runner" or os.environ.get("SLURM_PROCID") == "1"
    graces[:] = _grace(args.grace, driver)
    if copts.kind in SUBMIT_COMMAND:  # a refused worker job: one error now, not a hung run
        preflight(copts, worker_job_script(copts))
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm)
        if args.cluster != "slurm-runner":  # (the driver rank's: in _in_allocation)
            signal.signal(signal.SIGUSR1, _sigterm)
    if args.cluster == "slurm-runner":
        summary = _in_allocation(args, cfg, opts, copts)
    else:
        summary = run_batch(args.manifest, args.output, cfg, opts, copts)
    print_summary(summary)
    return TERM_EXIT if summary.interrupted and _terminated[0] else summary.exit_code


def _dry_run(args, cfg, copts, batch_note: str) -> int:  # noqa: ANN001
    from hpc_nst.batch.dryrun import make_plan, print_plan

    plan, problems = make_plan(args.manifest, args.output, cfg, args.batch_size,
                               args.batches_per_task, copts, args.calibration, args.device,
                               args.retry_failed, args.recompute_changed)
    print(f"batch size {args.batch_size} ({batch_note})")
    print_plan(plan, problems, cfg, copts, sys.stdout, args.output)
    refused = False
    if plan.job_script:
        from hpc_nst.batch.submission import preflight
        from hpc_nst.errors import ClusterError

        try:
            said = preflight(copts, plan.job_script, missing_ok=True)
            print(f"scheduler check ({copts.kind}): {said or 'ok'}")
        except ClusterError as exc:
            refused = True
            print(f"scheduler check: {exc}: a run would refuse to start", file=sys.stderr)
    if problems and not args.skip_invalid:
        print(f"{len(problems)} invalid row(s): a run would refuse to start (fix them, or "
              "add --skip-invalid)", file=sys.stderr)
        return 2
    return 2 if refused else 0


def _in_allocation(args, cfg, opts, copts):  # noqa: ANN001, ANN202
    """Driver rank of a SLURMRunner; the scheduler and worker ranks never get past __enter__."""
    from distributed import Client

    from hpc_nst.batch.cluster import (
        ClusterHandle,
        available_cores,
        make_runner,
        scheduler_gpus,
        worker_slots,
    )
    from hpc_nst.batch.runner import run_batch

    with make_runner(copts, args.output) as runner, Client(runner) as client:
        # dask_jobqueue's runner module makes SIGINT a sys.exit on import (its scheduler and
        # worker ranks shut down that way); the driver rank wants Ctrl-C back as a
        # KeyboardInterrupt, whose handling saves the finished work and exits 130
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGUSR1, _sigterm)  # (the driver rank only: save and stop)
        gpus = scheduler_gpus(copts)
        slots = worker_slots(copts, gpus)
        # every rank of the allocation has the cores Slurm grants a task: split between slots
        threads = max(1, available_cores() // slots)
        handle = ClusterHandle(runner, {"GPU": 1} if gpus else None, threads,
                               f"SLURMRunner: {runner.n_workers} worker rank(s) in job "
                               f"{runner.job_id}, {slots} task(s) at a time", slots)
        client.wait_for_workers(1)
        from hpc_nst.batch.runner import register_drain

        register_drain(client)
        return run_batch(args.manifest, args.output, cfg, opts, client=client, handle=handle)
