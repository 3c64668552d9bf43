"""Leaving cleanly before a walltime or a preemption: a worker drains on ``SIGUSR1``.

Worker jobs ask Slurm for ``--signal=B:USR1@<seconds>`` before their time limit (and
``--requeue``, so a preempted job comes back); the worker process is the job's batch shell
(``exec python -m distributed.cli.dask_worker``, no nanny) so the signal reaches it. On the
signal the :class:`DrainOnSignal` plugin marks the worker as closing (the scheduler sends it
nothing new), waits until the task in hand has finished, been written and collected by the driver,
and then closes the worker: nothing is computed twice or lost, and the driver carries on with
the other workers (adaptive scaling submits new jobs for the rest). The wait is bounded
(``timeout_s``, 50 s: under the shortest lead, 60 s, that the worker jobs ask for); a task that
takes longer is cut off with the job and rerun elsewhere. A preemption itself comes as SIGTERM
(the worker stops, its task reruns elsewhere, and ``--requeue`` brings the job back).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin

# Under "distributed": worker processes of batch jobs log through dask's handlers only, so the
# drain shows in the worker job's log.
log = logging.getLogger("distributed.hpc_nst.preempt")
BUSY_STATES = ("executing", "long-running", "memory")  # tasks a leaving worker must see out


class DrainOnSignal(WorkerPlugin):
    """A dask worker plugin: drain, then close, on ``signum``."""

    name = "hpc-nst-drain-on-signal"
    idempotent = True

    def __init__(self, signum: int = signal.SIGUSR1, timeout_s: float = 50.0,
                 ignore_interrupt: bool = False):
        self.signum, self.timeout_s = int(signum), timeout_s
        self.draining = False
        #: local workers share the driver's process group: a terminal's Ctrl-C reaches them
        #: too and would kill the tasks the driver's grace period waits for
        self.ignore_interrupt = ignore_interrupt

    def setup(self, worker: Any) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.info("worker %s: not in the main thread; %s not handled", worker.name,
                     signal.Signals(self.signum).name)
            return
        loop = worker.loop

        def handler(signum: int, frame: object) -> None:
            loop.add_callback(self.drain, worker)

        signal.signal(self.signum, handler)
        if self.ignore_interrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def drain(self, worker: Any) -> None:
        from distributed.core import Status

        if self.draining:
            return
        self.draining = True
        name = signal.Signals(self.signum).name
        busy = [k for k, ts in worker.state.tasks.items() if ts.state in BUSY_STATES]
        log.warning("worker %s got %s: finishing %d task(s) in hand, then leaving",
                    worker.name, name, len(busy))
        if worker.status in (Status.running, Status.paused):
            # No new task from the scheduler; unlike "paused", the memory monitor does not
            # lift this state again.
            worker.status = Status.closing_gracefully
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if not any(ts.state in BUSY_STATES for ts in worker.state.tasks.values()):
                break
            await asyncio.sleep(0.5)
        log.warning("worker %s leaves after %s (tasks in hand done and collected)",
                    worker.name, name)
        try:  # retire (tasks queued here go elsewhere, not counted as lost), then close
            worker.status = Status.paused  # close_gracefully waits forever if already closing
            await worker.close_gracefully(reason=f"hpc-nst: {name} (walltime or preemption)")
        except (OSError, ConnectionError) as exc:  # the nanny or scheduler went first
            log.info("worker %s: closing after %s: %s", worker.name, name, exc)
