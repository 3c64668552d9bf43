"""Building the dask cluster: local, a batch scheduler through dask-jobqueue, or SLURMRunner.

- ``local``: a :class:`distributed.LocalCluster` (one worker per GPU, or one CPU worker using
  every core: one task per core, one torch thread each).
- Every worker runs :func:`worker_slots` tasks at once (2 on a GPU, so that one task's host
  work overlaps the other's device compute).
- ``slurm``/``pbs``/``sge``/``lsf``: dask-jobqueue; every option not given on the command line
  falls back to the user's ``jobqueue.<scheduler>.*`` dask configuration (``slurm/jobqueue.yaml``
  is a documented example). One job = one worker process = one GPU: a GPU request per job
  (added unless the configuration already has one), ``--resources GPU=<tasks per worker>``
  (each task asks for ``GPU=1``), ``--lifetime`` and
  ``--lifetime-stagger`` under the walltime (unless configured), adaptive scaling between
  ``min_workers`` and ``workers``; Slurm worker jobs get ``--requeue`` and
  ``--signal=B:USR1@<lead>`` and run the worker as the batch shell (``exec``, no nanny) so it
  can drain on the signal (:mod:`hpc_nst.batch.preempt`); ``HPC_NST_PYTHON`` /
  ``HPC_NST_SETUP`` become the worker jobs' ``python`` command and job-script prologue unless
  configured. ``SLURM_*``/``SBATCH_*``
  variables of a driver running inside an sbatch job are scrubbed first, so they do not leak
  into the worker jobs.
- ``slurm-runner``: everything inside one allocation (dask-jobqueue's ``SLURMRunner`` under
  ``srun``): rank 0 is the scheduler, rank 1 the driver, the other ranks are workers.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask

from hpc_nst.batch.held_signals import started_holding_signals
from hpc_nst.batch.slots import (
    SLOTS_KEY,
    cpu_only,
    gpu_resource,
    is_gpu_request,
    scheduler_gpus,
    with_gpu_resource,
    worker_slots,
)
from hpc_nst.batch.submission import (  # noqa: F401 (some re-exported)
    SCRUB_PREFIXES,
    SubmissionWatch,
    lifetime_args,
    quiet_given_up_submissions,
    scrub_scheduler_env,
    walltime_seconds,
)
from hpc_nst.errors import ConfigError

log = logging.getLogger(__name__)
JOBQUEUE = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
            "lsf": "LSFCluster"}
CLUSTERS = ("local", *JOBQUEUE, "slurm-runner")
TASK_PREFIX = "hpc-nst-shard"
#: GPU request added per scheduler when the configuration has none.
GPU_DIRECTIVE = {"slurm": "--gres=gpu:1", "pbs": "-l ngpus=1", "sge": "-l gpu=1",
                 "lsf": '-gpu "num=1"'}


@dataclass
class ClusterOptions:
    """Command-line cluster options; None means: the dask/jobqueue configuration decides."""

    kind: str = "local"
    workers: int | None = None  # local: worker count; batch schedulers: adaptive maximum
    min_workers: int | None = None  # adaptive minimum (batch schedulers)
    gpus: int | None = None  # GPUs per worker (0 or 1); None: 1 for batch schedulers, local auto
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    memory: str | None = None
    cores: int | None = None
    interface: str | None = None
    local_directory: str | None = None
    job_extra: list[str] = field(default_factory=list)
    scheduler_file: str | None = None  # slurm-runner
    task_duration: str = "120s"  # a-priori task duration for adaptive scaling
    tasks_per_worker: int | None = None  # tasks a worker runs at once; None: see worker_slots


@dataclass
class ClusterHandle:
    """The cluster (or runner), what tasks must ask for, and torch threads per worker."""

    cluster: Any
    resources: dict[str, int] | None
    threads: int
    description: str
    slots: int = 1  # tasks each worker runs at once
    watch: SubmissionWatch | None = None  # worker-job submissions (batch schedulers)


def _without(args: list[str], flags: tuple[str, ...]) -> list[str]:
    """``args`` without the given ``--flag value`` pairs (or ``--flag=value`` items)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        elif not a.startswith(tuple(f"{f}=" for f in flags)):
            out.append(a)
    return out


def _jobqueue_kwargs(opts: ClusterOptions, warn: bool = False) -> dict[str, Any]:
    """dask-jobqueue's keyword arguments for ``opts`` over ``jobqueue.yaml``; ``warn``: log
    what the options change in the configuration (only where the jobs are made, or shown by
    a dry run: a run computes these several times, and said each warning twice)."""
    name = opts.kind
    conf = dask.config.get(f"jobqueue.{name}", default={}) or {}

    def get(key: str) -> Any:
        return conf.get(key, conf.get(key.replace("-", "_")))

    kwargs: dict[str, Any] = {}
    for key in ("queue", "account", "walltime", "memory", "cores", "interface",
                "local_directory"):
        value = getattr(opts, key)
        if value is not None:
            kwargs[key] = value
    if name in ("sge", "lsf") and opts.account is not None:
        kwargs["project"] = kwargs.pop("account")
    if get("processes") is None:
        kwargs["processes"] = 1
    gpus = scheduler_gpus(opts)
    if not gpus and opts.tasks_per_worker is not None:
        raise ConfigError("--tasks-per-worker: a CPU worker job runs one task per core (one "
                          "torch thread each); give --cores N for N tasks at a time")
    slots = worker_slots(opts, gpus) if gpus else 1
    if get("cores") is None and "cores" not in kwargs:
        kwargs["cores"] = slots  # a worker runs as many tasks at once as it has threads
    if get("memory") is None and "memory" not in kwargs:
        kwargs["memory"] = "4GB"
    directives = [*(get("job-extra-directives") or []), *opts.job_extra]
    args = list(get("worker-extra-args") or [])
    if not gpus:  # the configuration's GPU requests are for GPU jobs: not these
        configured, args, dropped = cpu_only(list(get("job-extra-directives") or []), args)
        directives = [*configured, *opts.job_extra]
        if dropped and warn:
            log.warning("--gpus-per-worker 0: the configuration's GPU requests left out of "
                        "the worker jobs: %s", ", ".join(dropped))
    spec = str(get("resource-spec") or "")
    if gpus and not any(is_gpu_request(d) for d in directives) and "gpu" not in spec.lower():
        directives.append(GPU_DIRECTIVE[name])
    kwargs["job_extra_directives"] = directives
    if gpus:  # tasks ask for GPU=1: GPU=n lets n run at once (no more than its threads)
        n = min(slots, _threads(kwargs, get))
        if n < slots and warn:
            log.warning("%d tasks per worker asked, but a worker job has %d thread(s) "
                        "(cores / processes): %d at a time", slots, n, n)
        given = opts.tasks_per_worker is not None or dask.config.get(SLOTS_KEY, None) \
            is not None
        if given or gpu_resource(args) is None:
            args = with_gpu_resource(args, n)  # else: the configured GPU=n stands
    if opts.walltime is not None:  # a walltime given now invalidates a configured lifetime
        args = _without(args, ("--lifetime", "--lifetime-stagger"))
    if "--lifetime" not in args:
        args += lifetime_args(kwargs.get("walltime", get("walltime")), name)
    kwargs["worker_extra_args"] = args
    # The driver's launcher reaches the worker jobs: HPC_NST_PYTHON (may be several words,
    # e.g. a container: "apptainer exec --nv img.sif python"; dask-jobqueue writes it into
    # the job script unquoted) and HPC_NST_SETUP (shell code run first).
    python = get("python") or os.environ.get("HPC_NST_PYTHON", "").strip() or sys.executable
    if name == "slurm":
        # Preemption and walltime: the job comes back when preempted (--requeue) and gets
        # SIGUSR1 before its limit, which the worker (the batch shell itself: exec, no nanny)
        # turns into "finish the task in hand, then leave" (hpc_nst.batch.preempt).
        secs = walltime_seconds(kwargs.get("walltime", get("walltime")), name)
        if not any(d.startswith(("--requeue", "--no-requeue")) for d in directives):
            directives.append("--requeue")
        if not any(d.startswith("--signal") for d in directives):
            lead = min(300, max(60, int(0.1 * secs))) if secs else 120
            directives.append(f"--signal=B:USR1@{lead}")
        if get("nanny") is None:
            kwargs["nanny"] = False
        if not python.startswith("exec "):
            python = f"exec {python}"
    if python != (get("python") or sys.executable):
        kwargs["python"] = python
    setup = os.environ.get("HPC_NST_SETUP", "").strip()
    if setup and not get("job-script-prologue"):  # (dask-jobqueue's default is [], not None)
        kwargs["job_script_prologue"] = [setup]
    return kwargs


def _threads(kwargs: dict[str, Any], get: Any) -> int:
    """A jobqueue worker's threads (cores / processes): the most tasks it can run at once."""
    cores = int(kwargs.get("cores") or get("cores") or 1)
    return max(1, cores // int(kwargs.get("processes") or get("processes") or 1))


def _jobqueue_slots(kind: str, kwargs: dict[str, Any], gpus: int) -> int:
    """Tasks a jobqueue worker runs at once: on a GPU its ``GPU=n`` (at most its threads);
    a CPU worker runs one task per thread (one torch thread each)."""
    conf = dask.config.get(f"jobqueue.{kind}", default={}) or {}
    threads = _threads(kwargs, conf.get)
    return min(gpu_resource(kwargs["worker_extra_args"]) or 1, threads) if gpus else threads


@dataclass(frozen=True)
class LocalLayout:
    """How a local cluster of some :class:`ClusterOptions` is laid out."""

    gpus: int  # GPUs per worker (0 or 1)
    workers: int
    slots: int  # tasks each worker runs at once
    threads: int  # torch threads per task: the worker's cores split between its tasks
    found: int  # GPUs on this machine


def check_counts(opts: ClusterOptions) -> None:
    """Refuse worker counts that would leave the cluster without a worker (the run would wait
    for one forever): ``workers`` must be at least 1, ``min_workers`` at least 0."""
    if opts.workers is not None and opts.workers < 1:
        raise ConfigError(f"--workers {opts.workers}: give a whole number >= 1")
    if opts.min_workers is not None and opts.min_workers < 0:
        raise ConfigError(f"--min-workers {opts.min_workers}: give a whole number >= 0")


def local_layout(opts: ClusterOptions) -> LocalLayout:
    """The layout :func:`make_cluster` gives a local cluster of ``opts`` (nothing started)."""
    check_counts(opts)
    try:
        import torch

        n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover
        n_gpu = 0
    gpus = (1 if n_gpu else 0) if opts.gpus is None else opts.gpus
    workers = opts.workers or (n_gpu if gpus and n_gpu else 1)
    cores = available_cores()
    slots = worker_slots(opts, gpus, cpu_default=max(1, cores // workers))
    return LocalLayout(gpus, workers, slots, max(1, cores // workers // slots), n_gpu)


def planned_slots(opts: ClusterOptions) -> int:
    """Tasks each worker of ``opts``'s cluster would run at once (nothing is started)."""
    if opts.kind == "local":
        return local_layout(opts).slots
    gpus = scheduler_gpus(opts)
    if opts.kind in JOBQUEUE:
        return _jobqueue_slots(opts.kind, _jobqueue_kwargs(opts), gpus)
    return worker_slots(opts, gpus)


def make_cluster(opts: ClusterOptions) -> ClusterHandle:
    """Start the cluster described by ``opts`` (not for ``slurm-runner``: see make_runner)."""
    if opts.kind not in CLUSTERS:
        raise ValueError(f"unknown cluster {opts.kind!r} (choose from {', '.join(CLUSTERS)})")
    check_counts(opts)
    # Adaptive scaling sizes the cluster from the expected work: tell it a task is long.
    dask.config.set({"distributed.scheduler.default-task-durations":
                     {TASK_PREFIX: opts.task_duration}})
    if opts.kind == "local":
        return _local(opts)
    scrubbed = scrub_scheduler_env()
    dask_jobqueue = _import_jobqueue()
    kwargs = _jobqueue_kwargs(opts, warn=True)
    cls = getattr(dask_jobqueue, JOBQUEUE[opts.kind])
    watch = SubmissionWatch()
    quiet_given_up_submissions()  # a given-up job's tracebacks: the watch says it once
    cluster = cls(**kwargs, job_cls=watch.job_class(cls.job_cls))
    maximum = opts.workers or 1
    minimum = min(opts.min_workers or 0, maximum)
    cluster.adapt(minimum=minimum, maximum=maximum)
    gpus = scheduler_gpus(opts)
    note = f"; scrubbed {len(scrubbed)} SLURM_*/SBATCH_* variables" if scrubbed else ""
    # GPU workers run `slots` tasks at a time (each asks for GPU=1 of the worker's GPU=slots),
    # the job's cores split between them; CPU workers run one task per core, each with one
    # torch thread.
    cores = kwargs.get("cores") or dask.config.get(f"jobqueue.{opts.kind}.cores", None) or 0
    slots = _jobqueue_slots(opts.kind, kwargs, gpus)
    return ClusterHandle(
        cluster, {"GPU": 1} if gpus else None, max(1, int(cores) // slots) if gpus else 1,
        f"{cls.__name__}: adaptive {minimum}..{maximum} worker job(s), "
        + (f"1 GPU each, {slots} task(s) at a time" if gpus else "no GPU each") + note,
        slots, watch)


def worker_job_script(opts: ClusterOptions, warn: bool = False) -> str:
    """The job script dask-jobqueue would submit for ``opts`` (rendered, nothing submitted;
    ``warn`` as in :func:`_jobqueue_kwargs`)."""
    cls = getattr(_import_jobqueue(), JOBQUEUE[opts.kind])
    kwargs = _jobqueue_kwargs(opts, warn)
    logs = kwargs.get("log_directory") or dask.config.get(
        f"jobqueue.{opts.kind}.log-directory", None)
    made = [] if not logs else [d for d in (Path(logs), *Path(logs).parents)
                                if str(d) not in (".", "/") and not d.exists()]
    try:
        with cls(**kwargs) as cluster:
            return str(cluster.job_script())
    finally:  # dask-jobqueue makes the log folder on rendering: a dry run creates nothing
        for folder in made:  # (deepest first)
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def _import_jobqueue() -> Any:
    """dask_jobqueue, keeping Ctrl-C a KeyboardInterrupt (its runner module replaces SIGINT's
    handler with sys.exit at import time)."""

    handler = signal.getsignal(signal.SIGINT)
    import dask_jobqueue

    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGINT, handler)
    return dask_jobqueue


def available_cores(environ: dict[str, str] | os._Environ = os.environ) -> int:
    """Cores this process may use: Slurm's grant (``SLURM_CPUS_PER_TASK``) inside a job, else
    the CPU affinity mask (cgroups, taskset), else every core of the node."""
    granted = environ.get("SLURM_CPUS_PER_TASK", "")
    if granted.isdigit() and int(granted) > 0:
        return int(granted)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _local(opts: ClusterOptions) -> ClusterHandle:
    from distributed import LocalCluster

    lay = local_layout(opts)
    kwargs: dict[str, Any] = {}
    if opts.local_directory:
        kwargs["local_directory"] = opts.local_directory
    # The workers ignore SIGINT from their setup on (DrainOnSignal): a terminal's Ctrl-C
    # goes to the whole process group, and the driver's grace period waits for the tasks
    # they run. A SIGINT or SIGTERM while the cluster starts is held until it has.
    def start() -> Any:
        return LocalCluster(
            n_workers=lay.workers, threads_per_worker=lay.slots, processes=True,
            dashboard_address=":0", resources={"GPU": lay.slots} if lay.gpus else None,
            **kwargs)

    cluster = started_holding_signals(start)
    return ClusterHandle(
        cluster, {"GPU": 1} if lay.gpus else None, lay.threads,
        f"LocalCluster: {lay.workers} worker process(es), {lay.slots} task(s) at a time, "
        + (f"1 GPU each ({lay.found} found)" if lay.gpus
           else f"CPU, {lay.threads} torch thread(s) each"),
        lay.slots)


def make_runner(opts: ClusterOptions, store: Path) -> Any:
    """A SLURMRunner (call inside ``srun``); only the driver rank returns from ``__enter__``."""
    from dask_jobqueue.slurm import SLURMRunner

    scheduler_file = opts.scheduler_file or str(
        store.resolve().parent / f".{store.name}.scheduler-{{job_id}}.json")
    gpus = scheduler_gpus(opts)
    slots = worker_slots(opts, gpus)
    worker_options: dict[str, Any] = {"nthreads": slots}
    if gpus:
        worker_options["resources"] = {"GPU": slots}
    if opts.local_directory:
        worker_options["local_directory"] = os.path.expandvars(opts.local_directory)
    return SLURMRunner(scheduler_file=scheduler_file,
                       scheduler_options={"dashboard_address": ":0"},
                       worker_options=worker_options)


def dashboard(client: Any) -> str | None:
    """The dashboard address, or None when bokeh is missing."""
    try:
        link = client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard is not an error
        return None
    return link if link and not re.search(r":-?1/", link) else None
