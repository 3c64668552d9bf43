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

import functools
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hpc_nst.batch import store as st
from hpc_nst.batch.cluster import TASK_PREFIX, ClusterHandle, ClusterOptions, dashboard
from hpc_nst.batch.manifest import Manifest, ManifestError, read_manifest
from hpc_nst.batch.progress import Progress
from hpc_nst.batch.record import Recorder
from hpc_nst.batch.tasks import Task, make_tasks, store_order
from hpc_nst.batch.worker import PairSpec, TaskSpec, run_task
from hpc_nst.config import JobConfig

log = logging.getLogger(__name__)

DASK_RETRIES = 2  # retries of a task that raised (the worker function itself records errors)


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
    batch_note: str = ""  # how the batch size was chosen (printed with the cluster)


@dataclass
class RunSummary:
    """What a run did, and the state of the store afterwards."""

    store: Path
    total: int
    done: int
    failed: int
    pending: int
    ran: int  # pairs submitted in this run
    skipped: int  # pairs already done before this run
    wall_s: float
    failures: list[tuple[str, int, str]] = field(default_factory=list)  # (pair_id, line, error)
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        return 130 if self.interrupted else (1 if self.failed or self.pending else 0)


def pairs_per_task(n_pairs: int, batch_size: int, batches_per_task: int | None) -> int:
    """Pairs per task (= per shard). Automatic: 1 batch per task up to 2000 tasks, then up to 8
    batches per task, keeping the file count of large stores in check."""
    if batches_per_task is None:
        batches_per_task = min(8, max(1, -(-n_pairs // (batch_size * 2000))))
    return batch_size * batches_per_task


def _open_or_create(path: Path, cfg: JobConfig, manifest: Manifest, opts: RunOptions,
                    out: TextIO) -> tuple[Any, list[int]]:
    """The store's root group and, per store row, the position of its manifest row."""
    if path.exists():
        root = st.open_root(path, mode="r+")
        st.check_job(path, root, cfg)
        return root, st.match_manifest(path, root, manifest)
    order = store_order(manifest.pairs)
    ppt = pairs_per_task(len(manifest.valid), opts.batch_size, opts.batches_per_task)
    frames, samples, records = st.capacities(manifest, cfg)
    layout = st.Layout(len(order), ppt, opts.batch_size, frames, samples, records)
    t0 = time.perf_counter()
    try:
        st.create_store(path, cfg, manifest, order, layout)
    except OSError as exc:
        if path.exists():
            raise st.StoreError(f"{path} was created by another run meanwhile") from exc
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
    return st.capacities(sub, cfg)


def _executing(dask_worker: Any) -> list[str]:
    """Keys of the tasks a dask worker is executing (run on each worker)."""
    return [ts.key for ts in dask_worker.state.executing]


def _suspicious(dask_scheduler: Any, keys: list[str]) -> dict[str, int]:
    """Per task key: times its worker died under it, plus dask retries used."""
    out = {}
    for key in keys:
        ts = dask_scheduler.tasks.get(key)
        if ts is not None:
            out[key] = int(ts.suspicious) + max(0, DASK_RETRIES - int(ts.retries or 0))
    return out


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
    if manifest.problems and not opts.skip_invalid:
        raise ManifestError(manifest.path, manifest.problems + [
            "(fix these rows, or rerun with --skip-invalid to record them as failed and run "
            "the others)"])
    st.require_writable(store_path)
    root, where = _open_or_create(store_path, cfg, manifest, opts, out)
    if manifest.problems and not opts.quiet:
        print(f"{manifest.path}: {len(manifest.problems)} invalid row(s) recorded as failed "
              "(--skip-invalid)", file=out)
    with st.StoreLock(store_path):
        return _drive(manifest, store_path, root, where, cfg, opts, cluster, client, handle,
                      out, t_start)


def _plan(manifest: Manifest, root: Any, where: list[int], recorder: Recorder,
          opts: RunOptions) -> tuple[list[int], int]:
    """Store indices to run now, and how many were already done."""
    from hpc_nst.batch.store import DONE, FAILED

    status = recorder.status
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
    own = gone = None
    try:
        if tasks:
            if client is None:
                own, client, handle = _start_cluster(cluster_opts or ClusterOptions(), path)
            _submit_all(client, handle, tasks, manifest, where, path, recorder, opts, out,
                        run_id)
    except KeyboardInterrupt:
        interrupted = True
        log.info("run %s interrupted; finished pairs are saved", run_id)  # the print says so
        print("interrupted: finished pairs are saved; rerun the same command to resume",
              file=out)
    finally:
        try:
            recorder.flush()
        except st.StoreGoneError as exc:  # nothing more goes there (raised below)
            gone = exc
        if own is not None:
            _stop_cluster(*own)
        counts = recorder.counts()
        if gone is None:
            st.update_runs(path, root, entry | {
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "t_end": time.time(),
                "wall_s": round(time.time() - t_start, 3), "interrupted": interrupted,
                **counts})
    if gone is not None:
        raise gone
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
    register_drain(client)
    return (client, handle.cluster), client, handle


def register_drain(client: Any) -> None:
    """Every worker (present and future) drains on SIGUSR1 (:mod:`hpc_nst.batch.preempt`)."""
    from hpc_nst.batch.preempt import DrainOnSignal

    client.register_plugin(DrainOnSignal())


def _stop_cluster(client: Any, cluster: Any) -> None:
    for thing in (client, cluster):
        try:
            thing.close()
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass


def _spec(task: Task, manifest: Manifest, where: list[int], path: Path, device: str,
          threads: int) -> TaskSpec:
    batches = []
    for b in task.batches:
        pairs = []
        for i in b.indices:
            p = manifest.pairs[where[i]]
            pairs.append(PairSpec(i, p.pair_id, str(p.content_path), str(p.style_path),
                                  p.cfg.optim.seed))
        batches.append((b.cfg, tuple(pairs)))
    return TaskSpec(str(path.resolve()), task.shard, task.start, task.stop, tuple(batches),
                    device, threads)


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
    d = _Dispatch(client, handle, manifest, where, path, recorder, opts, out, run_id)
    futures = as_completed([d.submit(t) for t in tasks], with_results=False)
    try:
        d.collect(futures, progress)
    except KeyboardInterrupt:
        d.flush()
        d.wind_down(futures, progress)  # a second Ctrl-C ends it at once
        raise
    finally:
        try:
            d.flush()  # also on Ctrl-C/SIGTERM: what finished is recorded
        finally:
            progress.close()


class _Dispatch:
    """Submission, resubmission and recording of tasks for one run."""

    def __init__(self, client: Any, handle: ClusterHandle | None, manifest: Manifest,
                 where: list[int], path: Path, recorder: Recorder, opts: RunOptions,
                 out: TextIO, run_id: str):
        self.client, self.manifest, self.where, self.path = client, manifest, where, path
        self.recorder, self.opts, self.out, self.run_id = recorder, opts, out, run_id
        self.resources = handle.resources if handle else None
        self.threads = handle.threads if handle else 0
        self.tries: dict[int, int] = {}
        self.by_key: dict[str, Task] = {}
        self.finished: list[tuple[Any, list[Any]]] = []

    def submit(self, task: Task) -> Any:
        self.tries[task.shard] = self.tries.get(task.shard, 0) + 1
        key = f"{TASK_PREFIX}-{task.shard}-try{self.tries[task.shard]}-{self.run_id}"
        spec = _spec(task, self.manifest, self.where, self.path, self.opts.device,
                     self.threads)
        self.by_key[key] = task
        return self.client.submit(run_task, spec, key=key, resources=self.resources,
                                  retries=DASK_RETRIES, pure=False)

    def wind_down(self, futures: Any, progress: Progress) -> None:
        """After an interrupt: cancel the tasks no worker has started, and record those that
        finish (running or already done) for at most ``opts.grace_s`` seconds."""
        try:  # the tasks a worker is executing now (not those queued on it)
            running = {k for keys in self.client.run(_executing).values() for k in keys}
        except Exception:  # noqa: BLE001 - workers gone: what the scheduler has assigned
            running = {k for keys in self.client.processing().values() for k in keys}
        with futures.lock:  # the client thread edits it as tasks finish
            pending = list(futures.futures)
        waiting = [f for f in pending if f.key not in running and f.status != "finished"]
        self.client.cancel(waiting)
        for f in waiting:
            self.by_key.pop(f.key, None)
        print(f"\ninterrupted: no new task starts; waiting up to {self.opts.grace_s:.0f} s for "
              f"{len(self.by_key)} running task(s) (Ctrl-C again to stop now)", file=self.out)
        log.info("interrupted: %d task(s) cancelled, %d left running", len(waiting),
                 len(self.by_key))
        deadline = time.monotonic() + self.opts.grace_s
        while self.by_key and time.monotonic() < deadline:
            if not futures.has_ready():
                time.sleep(0.2)
                continue
            for fut in futures.next_batch(block=False):
                task = self.by_key.pop(fut.key, None)
                if task is not None and fut.status == "finished":
                    self._finished(fut, task, progress)
            self.flush()

    def _finished(self, fut: Any, task: Task, progress: Progress) -> None:
        result = fut.result()
        for level, message in result.log:
            log.log(level, "shard %d (%s): %s", task.shard, fut.key, message)
        self.finished.append((fut, result.outcomes))
        progress.update(sum(o.error is None for o in result.outcomes),
                        sum(o.error is not None for o in result.outcomes))

    def settle(self) -> None:
        """Record the finished tasks' outcomes in memory (attempts from the scheduler) and
        release their results at once: a result the scheduler still holds would be computed
        again if its worker died, and that rerun would rewrite the shard under outcomes
        already taken (found by benchmarks/bench_load.py and hpc-nst verify)."""
        extra: dict[str, int] = {}
        if self.finished:
            try:
                extra = self.client.run_on_scheduler(
                    _suspicious, keys=[f.key for f, _ in self.finished])
            except Exception:  # noqa: BLE001 - e.g. interrupted: count one attempt each
                extra = {}
        for fut, outcomes in self.finished:
            for o in outcomes:
                self.recorder.record(o, attempts=1 + extra.get(fut.key, 0))
            fut.release()
        self.finished.clear()

    def flush(self) -> None:
        """Settle the finished tasks, then write the recorded outcomes to the store."""
        self.settle()
        self.recorder.flush()

    def collect(self, futures: Any, progress: Progress) -> None:
        """Handle each finished future: keep outcomes, resubmit lost tasks, fail the rest."""
        from concurrent.futures import CancelledError

        from distributed.scheduler import KilledWorker

        last_flush = time.monotonic()
        for fut in futures:
            task = self.by_key.pop(fut.key)
            if fut.status in ("pending", "lost"):
                # Its result was lost with a worker before we took it: the scheduler computes
                # it again; wait for that (not a failure).
                log.info("shard %d: result lost with its worker; waiting for the rerun",
                         task.shard)
                self.by_key[fut.key] = task
                futures.add(fut)
                continue
            if fut.status == "finished":
                self._finished(fut, task, progress)
                if not futures.has_ready():  # settle what came in together, in one round trip
                    self.settle()
            else:
                try:
                    exc = fut.exception()
                except CancelledError as cancelled:
                    exc = cancelled
                lost = isinstance(exc, (KilledWorker, CancelledError))
                if lost and self.tries[task.shard] <= self.opts.max_resubmits:
                    print(f"shard {task.shard}: its workers died repeatedly; resubmitting "
                          f"(try {self.tries[task.shard] + 1})", file=self.out)
                    log.info("shard %d: workers lost (%s); resubmitting, try %d",
                                task.shard, type(exc).__name__, self.tries[task.shard] + 1)
                    futures.add(self.submit(task))
                    continue
                what = "its workers died repeatedly" if lost else f"{type(exc).__name__}: {exc}"
                log.error("shard %d failed: %s", task.shard, what)
                for i in task.indices:
                    self.recorder.fail(i, f"task for shard {task.shard} failed: {what}",
                                       attempts=1)
                progress.update(0, len(task.indices))
            if time.monotonic() - last_flush >= self.opts.flush_interval:
                self.flush()
                last_flush = time.monotonic()
