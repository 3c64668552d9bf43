"""``hpc-nst run --dry-run``: validate everything, show the plan and its cost, submit nothing.

Checks the manifest (every row, audio headers), the job, the store (a different job or
manifest is refused exactly as a real run would) and the cluster configuration (for a batch
scheduler, dask-jobqueue renders the worker job script, which is printed); then prints the
pairs, batches and tasks a run would submit and, from a calibrated cost model
(:mod:`hpc_nst.batch.cost`), the device-hours and the wall time on the requested workers.
Nothing is created, locked or submitted.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from hpc_nst.batch import cost as costs
from hpc_nst.batch import store as st
from hpc_nst.batch.cluster import JOBQUEUE, ClusterOptions, planned_slots, worker_job_script
from hpc_nst.batch.manifest import read_manifest
from hpc_nst.batch.resume import blocking_problems, changed_mask, match_manifest
from hpc_nst.batch.tasks import make_tasks, store_order
from hpc_nst.config import JobConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What a run would do; ``device_s``/``wall_s`` are NaN without a cost model."""

    pairs: int
    invalid: int
    already_done: int
    to_run: int
    batches: int
    tasks: int
    pairs_per_task: int
    device_s: float
    wall_s: float
    workers: int
    model: str
    job_script: str
    slots: int = 1  # tasks at once per worker that divide the device time (1 on a GPU)
    changed: int = 0  # done pairs whose input files changed since
    recompute_changed: bool = False  # ... counted to run again
    no_model: str = ""  # why there is no estimate, where the usual words would mislead


def make_plan(manifest_path: Path, store_path: Path, cfg: JobConfig, batch_size: int,
              batches_per_task: int | None, copts: ClusterOptions,
              calibration: Path | None = None, device: str = "auto",
              retry_failed: bool = False,
              recompute_changed: bool = False) -> tuple[Plan, list[str]]:
    """The plan and the manifest's problems (empty when every row is valid)."""
    from hpc_nst.batch.runner import pairs_per_task

    manifest = read_manifest(manifest_path, cfg)
    exists = st.store_exists(store_path)  # as the run would refuse it
    st.require_writable(store_path)
    if exists:
        root = st.open_root(store_path)
        st.check_job(store_path, root, cfg)
        where = match_manifest(store_path, root, manifest, [])  # (corrected rows: allowed)
        status = st.read_column(root, "status")
        ppt = int(st.root_attrs(root)["layout"]["pairs_per_task"])
        found = changed_mask(root, manifest, where)  # as the run finds them (nothing written)
        changed = int(found[0].sum()) if found is not None else 0
        if changed and recompute_changed:
            status = np.where(found[0], st.PENDING, status)
    else:
        where = store_order(manifest.pairs)
        status = [st.PENDING] * len(where)
        changed = 0
        ppt = pairs_per_task(len(manifest.valid), batch_size, batches_per_task)
    pairs = [manifest.pairs[k] for k in where]
    # as the run plans it: done pairs skipped, failed ones only with --retry-failed
    todo = [i for i, p in enumerate(pairs) if p.error is None and status[i] != st.DONE
            and (status[i] != st.FAILED or retry_failed)]
    tasks = make_tasks(todo, [p.cfg for p in pairs], len(pairs), ppt, min(batch_size, ppt))
    batches = [b for t in tasks for b in t.batches]
    # where the tasks will run: the GPUs of worker jobs, or the local device asked for
    run_device = "cuda" if copts.kind != "local" and copts.gpus != 0 else device
    if run_device == "auto":  # the kind of device here, or the first entry's (by name) wins
        run_device = "cuda" if _is_cuda("auto") else "cpu"
    model = None
    if calibration is not None and calibration.suffix == ".zarr":
        model = costs.from_store(calibration, cfg, run_device)
    else:
        model = costs.from_file(calibration or costs.DEFAULT_FILE, cfg, run_device,
                                must_exist=calibration is not None)
    device_s = math.nan
    if model is not None:
        hop = cfg.stft.hop_length
        device_s = sum(model.batch_seconds(b.cfg, len(b.indices), max(
            1 + max(pairs[i].content_samples, 1) // hop for i in b.indices)) for b in batches)
    workers = max(1, copts.workers or 1)
    # Tasks are the unit of work: the wall time is at least the longest task. A CPU worker
    # runs `slots` at once on its own cores (the cost model's times are per task, measured
    # that way); two tasks on one GPU share it, so there the device time does not divide.
    slots = 1 if copts.gpus != 0 and _is_cuda(run_device) else planned_slots(copts)
    per_task = [device_s * len(t.indices) / max(len(todo), 1) for t in tasks] or [0.0]
    wall_s = max(device_s / min(workers * slots, max(len(tasks), 1)), max(per_task))
    if model is not None and tasks:  # each worker process's first pair loads the model...
        wall_s += model.warmup_s
        device_s += model.warmup_s * min(workers, len(tasks))
    script = worker_job_script(copts, warn=True) if copts.kind in JOBQUEUE else ""
    from hpc_nst.engine.methods.base import optimises

    plan = Plan(len(pairs), len(manifest.invalid), int(sum(s == st.DONE for s in status)),
                len(todo), len(batches), len(tasks), ppt, device_s, wall_s, workers,
                model.source if model else "", script, slots, changed, recompute_changed,
                "" if model or calibration is None or calibration.suffix != ".zarr" else
                f"none from {calibration}: it holds no done pair of this job"
                + ("" if not optimises(cfg) else " that ran on a GPU" if _is_cuda(run_device)
                   else " that ran on a CPU")
                + "; run `hpc-nst calibrate` with the same --job/--set on the target device")
    problems, kept = blocking_problems(store_path, manifest)
    if kept:
        log.warning(kept)
    return dataclasses.replace(plan, invalid=len(problems)), problems


def _is_cuda(device: str) -> bool:
    """Whether tasks asking for ``device`` run on a GPU (``auto``: one is here)."""
    if str(device).startswith("cuda"):
        return True
    if device != "auto":
        return False
    import torch

    return torch.cuda.is_available()


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else \
        f"{s // 60}m{s % 60:02d}s"


def print_plan(plan: Plan, problems: list[str], cfg: JobConfig, copts: ClusterOptions,
               out: TextIO, store: Path) -> None:
    w = lambda text="": print(text, file=out)  # noqa: E731
    what = f"resume {store}" if st.store_exists(store) else f"new store {store}"
    w(f"dry run: nothing is created or submitted ({what})")
    from hpc_nst.engine.methods.base import optimises

    w(f"job: method {cfg.method}, "
      + (f"{cfg.optim.iterations} iterations, Griffin-Lim {cfg.griffin_lim.iterations}"
         if optimises(cfg) else "no optimisation (each pair transformed alone)")
      + f", digest {cfg.digest()}")
    w(f"pairs: {plan.pairs} ({plan.invalid} invalid, {plan.already_done} already done, "
      f"{plan.to_run} to run) in {plan.batches} batch(es), {plan.tasks} task(s) of up to "
      f"{plan.pairs_per_task} pairs")
    if plan.changed:
        w(f"  {plan.changed} done pair(s) computed from input files that changed since: "
          + ("counted to run again (--recompute-changed)" if plan.recompute_changed else
             "kept as they are (--recompute-changed would run them again)"))
    for line in problems[:20]:
        w(f"  invalid: {line}")
    if len(problems) > 20:
        w(f"  ... and {len(problems) - 20} more invalid rows")
    unit = "GPU" if copts.kind != "local" and copts.gpus != 0 else "device"
    if plan.model:
        w(f"estimate: {plan.device_s / 3600:.3g} {unit}-hours of compute; wall time about "
          f"{_hms(plan.wall_s)} on {plan.workers} worker(s)"
          + (f", {plan.slots} task(s) at a time each" if plan.slots > 1 else "")
          + f" (cost model: {plan.model})")
    elif plan.no_model:
        w(f"estimate: {plan.no_model}")
    else:
        w("estimate: no cost model for this job and device: run `hpc-nst calibrate` with "
          "the same --job/--set on the target device (or pass --calibration STORE.zarr of "
          "an earlier run of this job)")
    if plan.job_script:
        w(f"worker job script ({copts.kind}):")
        w(plan.job_script.rstrip())
    elif copts.kind == "local":
        w(f"cluster: local ({copts.workers or 'auto'} worker process(es))")


def summary(plan: Plan) -> dict[str, Any]:
    """The plan as a dict (``--json``)."""
    from dataclasses import asdict

    return asdict(plan)
