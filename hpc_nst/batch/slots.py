"""Task slots: how many tasks a dask worker runs at once, and its ``--resources GPU=n``.

A GPU worker runs two tasks at a time by default (each asks for ``GPU=1`` of the worker's
``GPU=2``), so that one task's host work overlaps the other's device compute; a local CPU
worker one per core (:func:`hpc_nst.batch.cluster.local_layout`). The cluster module turns
these into worker options.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import dask

from hpc_nst.errors import ConfigError

if TYPE_CHECKING:
    from hpc_nst.batch.cluster import ClusterOptions

#: dask configuration key giving ``tasks_per_worker`` when the command line does not.
SLOTS_KEY = "hpc-nst.tasks-per-worker"


def scheduler_gpus(opts: ClusterOptions) -> int:
    """GPUs per worker job of a batch scheduler or SLURMRunner: 1 unless ``--gpus-per-worker
    0`` (a local cluster decides from the GPUs it finds: ``cluster.local_layout``)."""
    return 1 if opts.gpus is None else opts.gpus


def worker_slots(opts: ClusterOptions, gpus: int, cpu_default: int = 1) -> int:
    """Tasks one worker runs at once: ``--tasks-per-worker``, else the dask configuration's
    ``hpc-nst.tasks-per-worker``, else 2 on a GPU worker and ``cpu_default`` on a CPU one.

    Two tasks on one GPU overlap one task's host work (decoding, the store write, the
    driver's round trip) with the other's device compute. A local CPU worker runs one task per
    core, each with one torch thread (``cluster.local_layout``): on the 2-core development
    machine that does 1.2x the pairs per hour of one task on two threads
    (docs/performance.md), and the per-pair methods, single-threaded numpy, use every core.
    """
    value: Any = opts.tasks_per_worker
    if value is None:
        value = dask.config.get(SLOTS_KEY, None)
    if value is None:
        return 2 if gpus else cpu_default
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise ConfigError(f"tasks per worker {value!r} (--tasks-per-worker or the dask "
                         f"configuration's {SLOTS_KEY}): give a whole number >= 1")
    return int(value)


def _resources(args: list[str]) -> tuple[int, int, list[str]] | None:
    """Where the worker ``args`` give ``--resources`` (``--resources A=1,B=2`` or
    ``--resources=...``): (index, items it spans, its items); None where they do not."""
    for k, flag in enumerate(args):
        if flag == "--resources" and k + 1 < len(args):
            return k, 2, args[k + 1].replace(",", " ").split()
        if flag.startswith("--resources="):
            return k, 1, flag.partition("=")[2].replace(",", " ").split()
    return None


def _without_gpu(items: list[str]) -> list[str]:
    return [i for i in items if i.partition("=")[0] != "GPU"]


def gpu_resource(args: list[str]) -> int | None:
    """The ``GPU=n`` a worker's ``--resources`` gives (None when it gives none)."""
    found = _resources(args)
    for item in found[2] if found else []:
        name, _, n = item.partition("=")
        if name == "GPU" and n.isdigit():
            return int(n)
    return None


def with_gpu_resource(args: list[str], n: int) -> list[str]:
    """``args`` whose ``--resources`` gives ``GPU=n`` (its other resources kept; added if
    there is no ``--resources``)."""
    found = _resources(args)
    if found is None:
        return [*args, "--resources", f"GPU={n}"]
    k, span, items = found
    return [*args[:k], "--resources", " ".join([f"GPU={n}", *_without_gpu(items)]),
            *args[k + span:]]


#: A scheduler directive that requests GPUs (Slurm --gres=gpu..., --gpus..., -G; PBS ngpus=;
#: SGE -l gpu=; LSF -gpu): not a partition, account or constraint that merely names "gpu".
GPU_REQUEST = re.compile(r"--gres[= ]\S*gpu|--gpus(-per-\w+)?[= ]|^-G\s|ngpus=|-l\s+gpu=|^-gpu\s",
                         re.IGNORECASE)


def is_gpu_request(directive: str) -> bool:
    return bool(GPU_REQUEST.search(directive.strip()))


def cpu_only(directives: list[str], args: list[str]) -> tuple[list[str], list[str], list[str]]:
    """For CPU worker jobs (``--gpus-per-worker 0``): the configured ``directives`` without
    GPU requests and the worker ``args`` without a ``GPU=n`` resource (the shipped
    ``slurm/jobqueue.yaml`` has both for GPU jobs); also returns what was dropped."""
    dropped = [d for d in directives if is_gpu_request(d)]
    kept = [d for d in directives if d not in dropped]
    out = list(args)
    found = _resources(out)
    if found is not None and len(_without_gpu(found[2])) < len(found[2]):
        k, span, items = found
        dropped.append(" ".join(out[k: k + span]))
        rest = _without_gpu(items)
        out[k: k + span] = ["--resources", " ".join(rest)] if rest else []
    return kept, out, dropped
