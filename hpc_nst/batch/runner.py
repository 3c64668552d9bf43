"""The driver behind ``hpc-nst run``: validate, create or resume the store, run the tasks.

1. Validate the manifest (every problem at once; ``--skip-invalid`` records bad rows failed).
2. Create the store, or open it: a different job configuration or a different set of pairs is
   refused; pairs already done are skipped (their effective parameters are those of the store).
3. Submit one task per shard with pending pairs (failed ones too with ``--retry-failed``),
   asking for ``resources={"GPU": 1}`` on GPU clusters. A task whose worker dies is rerun by
   dask elsewhere; a task dask gives up on (``KilledWorker``) is resubmitted a few times.
4. Record each outcome (status last), show progress, and print a summary. The exit code is 1
   when any pair of the store is failed.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hpc_nst.batch import store as st
from hpc_nst.batch import store_creation
from hpc_nst.batch.cluster import ClusterHandle, ClusterOptions, dashboard
from hpc_nst.batch.dispatch import Dispatch
from hpc_nst.batch.locations import remove_partial_writes
from hpc_nst.batch.manifest import Manifest, ManifestError, read_manifest
from hpc_nst.batch.progress import Progress
from hpc_nst.batch.record import Recorder
from hpc_nst.batch.resume import (
    blocking_problems,
    changed_inputs,
    follow_moved_manifest,
    match_manifest,
    rebuild_from_manifest,
    record_manifest_digest,
    refresh_metadata,
    refresh_rows,
    refresh_targets,
)
from hpc_nst.batch.tasks import Task, make_tasks, store_order
from hpc_nst.config import JobConfig
from hpc_nst.errors import ClusterError
from hpc_nst.fsutil import DISK_ERRNOS

log = logging.getLogger(__name__)

@dataclass
class RunOptions:
    """Driver options (``hpc-nst run`` flags)."""

    batch_size: int = 4
    batches_per_task: int | None = None  # None: automatic (see pairs_per_task)
    skip_invalid: bool = False
    retry_failed: bool = False
    device: str = "auto"
    max_resubmits: int = 2
    flush_interval: float = 1.0
    progress_interval: float = 10.0
    quiet: bool = False
    grace_s: float = 60.0  # on Ctrl-C/SIGTERM: wait this long for tasks already running
    #: the grace for the interrupt at hand, asked when it comes (None: ``grace_s``): a
    #: SIGTERM inside a Slurm job gets less, under Slurm's KillWait (``hpc-nst run``)
    grace_for: Callable[[], float] | None = None
    recompute_changed: bool = False  # done pairs whose input files changed run again
    batch_note: str = ""  # how the batch size was chosen (printed with the cluster)


@dataclass
class RunSummary:
    """What a run did, and the state of the store afterwards."""

    store: Path
    total: int
    done: int
    failed: int
    pending: int
    ran: int  # pairs submitted in this run (done or not)
    skipped: int  # pairs already done before this run
    wall_s: float
    failures: list[tuple[str, int, str]] = field(default_factory=list)  # (pair_id, line, error)
    interrupted: bool = False

    @property
    def done_now(self) -> int:
        """Pairs this run brought to done (the throughput counts these, not those scheduled)."""
        return max(0, self.done - self.skipped)

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed or self.pending else 0)


#: Automatic tasks carry at least this many pairs once a manifest is large enough to keep
#: MIN_TASKS of them: at batch size 1-4 the driver's and scheduler's ~11 ms per task would
#: otherwise cap a fast engine at ~100 pairs/s (docs/performance.md).
MIN_TASK_PAIRS, MIN_TASKS, MAX_TASKS = 16, 64, 2000


def _cannot_record(path: Path, exc: OSError) -> st.StoreError:
    log.error("cannot record results in %s: %s", path, exc)
    return st.StoreError(
        f"{path}: cannot record the results ({exc.strerror or exc}); free space (or make the "
        "filesystem writable) and rerun the same command: what was recorded stays, the pairs "
        "not recorded are pending and run again")


def pairs_per_task(n_pairs: int, batch_size: int, batches_per_task: int | None) -> int:
    """Pairs per task (= per shard). Automatic: whole batches, at least MIN_TASK_PAIRS pairs
    where that still leaves MIN_TASKS tasks (small runs keep one batch per task, for
    parallelism), and more where a manifest would exceed MAX_TASKS tasks (up to 8 batches, or
    the MIN_TASK_PAIRS ones if more), keeping the file count of large stores in check."""
    if batches_per_task is None:
        batches = max(1, -(-n_pairs // (batch_size * MAX_TASKS)))
        least = -(-MIN_TASK_PAIRS // batch_size)  # batches that make MIN_TASK_PAIRS pairs
        if n_pairs >= least * batch_size * MIN_TASKS:
            batches = max(batches, least)
        batches_per_task = min(max(8, least), batches)
    return batch_size * batches_per_task


def _open_or_create(path: Path, exists: bool, cfg: JobConfig, manifest: Manifest,
                    opts: RunOptions, out: TextIO, fixes: list[int]) -> tuple[Any, list[int]]:
    """The store's root group and, per store row, the position of its manifest row; the
    store indices of rows corrected since they were invalid are appended to ``fixes``."""
    if exists:
        root = st.open_root(path, mode="r+")
        st.check_arrays(root)
        st.check_job(path, root, cfg)
        return root, match_manifest(path, root, manifest, fixes)
    order = store_order(manifest.pairs)
    ppt = pairs_per_task(len(manifest.valid), opts.batch_size, opts.batches_per_task)
    frames, samples, records = store_creation.capacities(manifest, cfg)
    layout = store_creation.Layout(len(order), ppt, opts.batch_size, frames, samples, records)
    t0 = time.perf_counter()
    try:
        store_creation.create_store(path, cfg, manifest, order, layout)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and path.exists():
            raise st.StoreError(f"{path} was created by another run meanwhile") from exc
        if exc.errno in (errno.EBUSY, errno.ENOTDIR, errno.EXDEV, errno.EISDIR):
            raise st.StoreError(f"{path}: the store cannot be put there ({exc.strerror}; a "
                                "mount point or a link?); choose a new path for -o (e.g. "
                                f"{path / 'batch.zarr'})") from exc
        if exc.errno in DISK_ERRNOS:
            raise st.StoreError(f"{path}: cannot create the store ({exc.strerror or exc}); "
                                "free space (or make the filesystem writable) and rerun the "
                                "same command: nothing was created") from None
        raise
    n_tasks = -(-len(order) // ppt)
    log.info("created %s: %d pairs in %d shard(s) of %d, job %s", path, len(order), n_tasks, ppt,
             cfg.digest())
    if not opts.quiet:
        print(f"created {path}: {len(order)} pairs in {n_tasks} shard(s) of {ppt} "
              f"({time.perf_counter() - t0:.1f} s)", file=out)
    return st.open_root(path, mode="r+"), order


def _needed(manifest: Manifest, todo_pairs: list[Any], cfg: JobConfig) -> tuple[int, int, int]:
    sub = Manifest(manifest.path, manifest.sha256, todo_pairs)
    return store_creation.capacities(sub, cfg)


def run_batch(
    manifest_path: str | Path,
    store_path: str | Path,
    cfg: JobConfig,
    opts: RunOptions | None = None,
    cluster: ClusterOptions | None = None,
    *,
    client: Any = None,
    handle: ClusterHandle | None = None,
    out: TextIO | None = None,
) -> RunSummary:
    """Run (or resume) a manifest into a store; see the module docstring.

    Pass ``client`` (and optionally ``handle``) to use an existing dask cluster; otherwise one
    is built from ``cluster`` and closed at the end.
    """
    opts = opts or RunOptions()
    out = out or sys.stderr
    store_path = Path(store_path)
    t_start = time.time()
    manifest = read_manifest(manifest_path, cfg)
    problems, kept = blocking_problems(store_path, manifest)
    if problems and not opts.skip_invalid:
        raise ManifestError(manifest.path, problems, hint=(
            "fix these rows, or rerun with --skip-invalid to record them as failed and run "
            "the others"))
    if kept:  # (said once the run goes ahead)
        log.warning(kept)
    exists = st.store_exists(store_path)  # a file or a foreign folder: said as such first
    st.require_writable(store_path)
    fixes: list[int] = []
    root, where = _open_or_create(store_path, exists, cfg, manifest, opts, out, fixes)
    if problems and not opts.quiet:
        print(f"{manifest.path}: {len(problems)} invalid row(s) recorded as failed "
              "(--skip-invalid)", file=out)
    with st.StoreLock(store_path):
        remove_partial_writes(store_path)  # (no task of ours runs yet)
        rebuild_from_manifest(store_path, root, manifest, where)  # (a damaged chunk of one)
        ours = follow_moved_manifest(store_path, root, manifest, where, out, opts.quiet,
                                     opts.recompute_changed)  # (declined: another dataset's)
        valid = refresh_rows(store_path, root, manifest, where, fixes, cfg)
        retargeted = refresh_targets(store_path, root, manifest, where) if ours else []
        if retargeted and not opts.quiet:
            print(f"{store_path}: the target of {len(retargeted)} pair(s) changed in the "
                  "manifest: recorded (the report measures their outputs against it)",
                  file=out)
        if ours:
            refresh_metadata(store_path, root, manifest, where, None if opts.quiet else out)
        changed = changed_inputs(store_path, root, manifest, where, opts.recompute_changed)
        if changed:
            what = (f"{len(changed)} done pair(s) computed from input files that changed since "
                    f"(size or modification time; e.g. {', '.join(changed[:3])})")
            if opts.recompute_changed:
                print(f"{store_path}: {what}: they run again", file=out)
            else:
                log.warning("%s: %s: their outputs are of the old files; rerun with "
                            "--recompute-changed to compute them again, or write to a new "
                            "store", store_path, what)
        record_manifest_digest(store_path, root, manifest)
        if fixes and not opts.quiet:
            print(f"{store_path}: {len(fixes)} row(s) invalid before, changed in the "
                  f"manifest: updated in the store; {valid} of them valid now"
                  + ("" if opts.retry_failed or not valid else
                     " (they run with --retry-failed)"), file=out)
        return _drive(manifest, store_path, root, where, cfg, opts, cluster, client, handle,
                      out, t_start)


def _plan(manifest: Manifest, root: Any, where: list[int], recorder: Recorder,
          opts: RunOptions) -> tuple[list[int], int]:
    """Store indices to run now, and how many were already done."""
    from hpc_nst.batch.store import DONE, FAILED, LOST

    status = recorder.status
    lost = int((status == LOST).sum())
    if lost:
        log.warning("%d pair(s) have lost their status (a missing file of the store's 'status' "
                    "array): they are computed again (hpc-nst verify names them)", lost)
    todo, skipped = [], 0
    for i, k in enumerate(where):
        pair = manifest.pairs[k]
        if status[i] == DONE:
            skipped += 1
        elif pair.error is not None:
            if status[i] != FAILED or recorder.data["error"][i] != pair.error:
                recorder.fail(i, pair.error)
        elif status[i] != FAILED or opts.retry_failed:
            todo.append(i)
    return todo, skipped


def _drive(manifest: Manifest, path: Path, root: Any, where: list[int], cfg: JobConfig,
           opts: RunOptions, cluster_opts: ClusterOptions | None, client: Any,
           handle: ClusterHandle | None, out: TextIO, t_start: float) -> RunSummary:
    recorder = Recorder(root, functools.partial(st.check_still_there, path, st.identity(path)))
    todo, skipped = _plan(manifest, root, where, recorder, opts)
    run_id = uuid.uuid4().hex[:8]
    if todo:
        frames, samples, records = _needed(manifest, [manifest.pairs[where[i]] for i in todo],
                                           cfg)
        st.ensure_capacity(path, root, frames, samples, records)
    ppt = int(st.root_attrs(root)["layout"]["pairs_per_task"])
    cfgs = [manifest.pairs[k].cfg for k in where]
    tasks = make_tasks(todo, cfgs, len(where), ppt, min(opts.batch_size, ppt))
    entry = {"id": run_id, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "t_start": t_start,
             "host": os.uname().nodename, "pairs": len(todo), "tasks": len(tasks),
             "argv": sys.argv[1:]}
    st.update_runs(path, root, entry)
    log.info("run %s on %s: %d pair(s) to run in %d task(s), %d already done", run_id, path,
             len(todo), len(tasks), skipped)
    interrupted = False
    own = gone = refused = None
    try:
        if tasks:
            if client is None:
                own, client, handle = _start_cluster(cluster_opts or ClusterOptions(), path)
            _submit_all(client, handle, tasks, manifest, where, path, recorder, opts, out,
                        run_id)
    except KeyboardInterrupt:
        interrupted = True
        if handle is not None and handle.watch is not None and handle.watch.fatal:
            refused = ClusterError(f"{handle.watch.fatal}; finished pairs are saved: fix the "
                                   "cluster options and rerun the same command to resume")
        else:
            log.info("run %s interrupted; finished pairs are saved", run_id)  # printed too
            print("interrupted: finished pairs are saved; rerun the same command to resume",
                  file=out)
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        gone = _cannot_record(path, exc)
    finally:
        try:
            try:
                recorder.flush()
            except st.StoreGoneError as exc:  # nothing more goes there (raised below)
                gone = exc
            except OSError as exc:
                if exc.errno not in DISK_ERRNOS:
                    raise
                gone = gone or _cannot_record(path, exc)
        finally:
            if own is not None:
                _stop_cluster(*own)
        counts = recorder.counts()
        if gone is None:
            st.update_runs(path, root, entry | {
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "t_end": time.time(),
                "wall_s": round(time.time() - t_start, 3), "interrupted": interrupted,
                # what this run finished, as it ended (status counts it from the pairs
                # otherwise, which a later repair or recompute changes)
                "done_in_run": max(0, counts["done"] - skipped), **counts})
    if gone is not None:
        raise gone
    if refused is not None:
        raise refused
    ids = st.read_column(root, "pair")
    rows = st.read_column(root, "row")
    failures = [(str(ids[i]), int(rows[i]), str(recorder.data["error"][i]))
                for i in range(len(ids)) if recorder.status[i] == st.FAILED]
    return RunSummary(path, len(ids), counts["done"], counts["failed"], counts["pending"],
                      len(todo), skipped, time.time() - t_start, failures, interrupted)


def _start_cluster(opts: ClusterOptions, path: Path) -> tuple[tuple[Any, Any], Any, Any]:
    from distributed import Client

    from hpc_nst.batch.cluster import make_cluster

    handle = make_cluster(opts)
    client = Client(handle.cluster)
    register_drain(client, local=opts.kind == "local")
    return (client, handle.cluster), client, handle


def register_drain(client: Any, local: bool = False) -> None:
    """Every worker (present and future) drains on SIGUSR1 (:mod:`hpc_nst.batch.preempt`);
    ``local`` workers also ignore SIGINT (the driver's Ctrl-C is the run's)."""
    from hpc_nst.batch.preempt import DrainOnSignal

    client.register_plugin(DrainOnSignal(ignore_interrupt=local))


def _stop_cluster(client: Any, cluster: Any) -> None:
    for thing in (client, cluster):
        try:
            thing.close()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass


def _submit_all(client: Any, handle: ClusterHandle | None, tasks: list[Task],
                manifest: Manifest, where: list[int], path: Path, recorder: Recorder,
                opts: RunOptions, out: TextIO, run_id: str) -> None:
    """Submit every task and record the outcomes as they come back."""
    from distributed import as_completed

    if handle and not opts.quiet:
        print(f"cluster: {handle.description}", file=out)
    if opts.batch_note and not opts.quiet:
        print(f"batch size {opts.batch_size} ({opts.batch_note})", file=out)
    link = dashboard(client)
    if link and not opts.quiet:
        print(f"dask dashboard: {link}", file=out)
    todo = [i for t in tasks for i in t.indices]
    counts = recorder.counts()
    retrying = int((recorder.status[todo] == st.FAILED).sum())
    counts = {"done": counts["done"], "failed": counts["failed"] - retrying,
              "pending": counts["pending"] - (len(todo) - retrying)}
    progress = Progress(len(todo), counts, out, opts.progress_interval, opts.quiet)
    d = Dispatch(client, handle, manifest, where, path, recorder, opts, out, run_id)
    futures = as_completed([], with_results=False)
    watching = None
    try:  # (a Ctrl-C while tasks are still being submitted waits for those running too)
        for task in tasks:
            futures.add(d.submit(task))
        watching = handle.watch.start(client, handle.cluster) if handle and handle.watch \
            else None
        d.collect(futures, progress)
    except KeyboardInterrupt:
        d.flush()
        if watching is not None:
            watching.set()  # a user's stop stays one (the watch fires no more)
        if not (handle and handle.watch and handle.watch.fatal):  # no worker: nothing runs
            d.wind_down(futures, progress)  # a second Ctrl-C ends it at once
        raise
    finally:
        if watching is not None:
            watching.set()
        try:
            d.flush()  # also on Ctrl-C/SIGTERM: what finished is recorded
        finally:
            progress.close()
