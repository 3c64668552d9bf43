"""The driver's task loop: submit tasks, record what comes back, resubmit what was lost.

A finished task's outcomes are settled (attempts: the executions its shard's tasks announced,
:data:`hpc_nst.batch.worker.ATTEMPT_TOPIC`) and its result released at once; a task whose
workers died is resubmitted up to ``max_resubmits`` times; on an interrupt, tasks not started
are cancelled and the running ones waited for (``grace_s``).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from hpc_nst.batch.cluster import TASK_PREFIX, ClusterHandle
from hpc_nst.batch.manifest import Manifest
from hpc_nst.batch.preempt import BUSY_STATES
from hpc_nst.batch.progress import Progress
from hpc_nst.batch.record import Recorder
from hpc_nst.batch.tasks import Task
from hpc_nst.batch.worker import ATTEMPT_TOPIC, PairSpec, TaskSpec, run_task

if TYPE_CHECKING:
    from hpc_nst.batch.runner import RunOptions

log = logging.getLogger(__name__)

DASK_RETRIES = 2  # retries of a task that raised (the worker function itself records errors)


def _executing(dask_worker: Any) -> list[str]:
    """Keys of the tasks a dask worker has started: executing, or finished with the result
    not yet collected (its shard already written: cancelling it would leave its pairs
    pending). Run on each worker."""
    return [k for k, ts in dask_worker.state.tasks.items() if ts.state in BUSY_STATES]


def _spec(task: Task, manifest: Manifest, where: list[int], path: Path, device: str,
          threads: int, slots: int, store_inode: int) -> TaskSpec:
    batches = []
    for b in task.batches:
        pairs = []
        for i in b.indices:
            p = manifest.pairs[where[i]]
            pairs.append(PairSpec(i, p.pair_id, str(p.content_path), str(p.style_path),
                                  p.cfg.optim.seed))
        batches.append((b.cfg, tuple(pairs)))
    return TaskSpec(str(path.resolve()), task.shard, task.start, task.stop, tuple(batches),
                    device, threads, slots, store_inode)


class Dispatch:
    """Submission, resubmission and recording of tasks for one run."""

    def __init__(self, client: Any, handle: ClusterHandle | None, manifest: Manifest,
                 where: list[int], path: Path, recorder: Recorder, opts: RunOptions,
                 out: TextIO, run_id: str):
        self.client, self.manifest, self.where, self.path = client, manifest, where, path
        self.recorder, self.opts, self.out, self.run_id = recorder, opts, out, run_id
        self.resources = handle.resources if handle else None
        self.threads = handle.threads if handle else 0
        self.slots = handle.slots if handle else 1
        self.tries: dict[int, int] = {}
        self.by_key: dict[str, Task] = {}
        self.finished: list[tuple[Any, list[Any]]] = []
        #: Executions started per shard in this run, from the workers' attempt events (every
        #: try, dask retries and reruns after a worker died included; a task only queued on a
        #: worker that died did not start and is not counted).
        self.started: dict[int, int] = {}
        self.shard_of: dict[str, int] = {}
        self.store_inode = path.stat().st_ino  # once per run: every task carries it
        try:
            client.subscribe_topic(ATTEMPT_TOPIC, self._on_attempt)
        except Exception:  # noqa: BLE001 - a client without events: one attempt per try
            log.debug("no attempt events: attempts count the driver's tries")

    def _on_attempt(self, event: Any) -> None:
        """An attempt event (timestamp, task key): count it for its shard (this run's only)."""
        shard = self.shard_of.get(str(event[1]) if isinstance(event, tuple) else str(event))
        if shard is not None:
            self.started[shard] = self.started.get(shard, 0) + 1

    def attempts(self, shard: int) -> int:
        """Executions of ``shard``'s tasks in this run, at least the driver's tries of it (an
        event can still be on its way when the result arrives)."""
        return max(self.started.get(shard, 0), self.tries.get(shard, 1), 1)

    def submit(self, task: Task) -> Any:
        self.tries[task.shard] = self.tries.get(task.shard, 0) + 1
        key = f"{TASK_PREFIX}-{task.shard}-try{self.tries[task.shard]}-{self.run_id}"
        self.shard_of[key] = task.shard
        spec = _spec(task, self.manifest, self.where, self.path, self.opts.device,
                     self.threads, self.slots, self.store_inode)
        future = self.client.submit(run_task, spec, key=key, resources=self.resources,
                                    retries=DASK_RETRIES, pure=False)
        self.by_key[key] = task  # only once submitted: an interrupt inside submit leaves no
        return future  # key that the grace wait would wait for in vain

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
        grace = self.opts.grace_for() if self.opts.grace_for else self.opts.grace_s
        print(f"\ninterrupted: no new task starts; waiting up to {grace:.0f} s for "
              f"{len(self.by_key)} running task(s) (Ctrl-C again to stop now)", file=self.out)
        log.info("interrupted: %d task(s) cancelled, %d left running", len(waiting),
                 len(self.by_key))
        deadline = time.monotonic() + grace
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
        """Record the finished tasks' outcomes in memory (with their shard's attempts) and
        release their results at once: a result the scheduler still holds would be computed
        again if its worker died, and that rerun would rewrite the shard under outcomes
        already taken (found by benchmarks/bench_load.py and hpc-nst verify). Each is taken
        off the list as it is recorded, so a signal arriving mid-way records none twice."""
        while self.finished:
            fut, outcomes = self.finished.pop(0)
            attempts = self.attempts(self.shard_of.get(fut.key, -1))
            for o in outcomes:
                self.recorder.record(o, attempts=attempts)
            fut.release()

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
                                       attempts=self.attempts(task.shard))
                progress.update(0, len(task.indices))
            if time.monotonic() - last_flush >= self.opts.flush_interval:
                self.flush()
                last_flush = time.monotonic()
