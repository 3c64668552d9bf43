"""Signals held while a cluster starts: a Ctrl-C or SIGTERM there stops the run after it."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)
#: The signals held: Ctrl-C, and the two that ``hpc-nst run`` turns into "save and stop".
HELD = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def started_holding_signals(start: Any) -> Any:
    """``start()`` with SIGINT, SIGTERM and SIGUSR1 held (main thread only).

    A signal there (Ctrl-C, ``scancel``, ``timeout``) is held (a SIGTERM left tracebacks of a
    half-started cluster), then the cluster is closed and the run stops: a SIGTERM is
    delivered to its handler (``hpc-nst run``'s: exit code 143), a Ctrl-C raises
    KeyboardInterrupt (130). A Ctrl-C was ignored here once, so that the worker processes
    started meanwhile would inherit SIGINT ignored, and was lost: the run went on. They
    ignore it from their setup on (``DrainOnSignal``, registered before any task), which is
    what the driver's grace period needs; a terminal's Ctrl-C in this second or two (it
    reaches the process group) stops their start too, with their tracebacks."""
    if threading.current_thread() is not threading.main_thread():
        return start()
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        held.append(signum)

    before = {signum: signal.signal(signum, hold) for signum in HELD}
    cluster = None
    try:
        try:
            cluster = start()
        except Exception:
            if not held:
                raise
        _run_pending_handlers()  # one caught by another thread meanwhile: recorded now
        wanted = [s for s in dict.fromkeys(held) if before[s] is not signal.SIG_IGN]
        if wanted and cluster is not None:  # closed while a new signal is still held
            log.info("%s while the cluster started: closing it",
                     " and ".join(signal.Signals(s).name for s in wanted))
            cluster.close()
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
    if not wanted:
        return cluster
    for signum in wanted:  # SIGTERM and SIGUSR1 (hpc-nst run's: save and stop) to the handler
        if signum != signal.SIGINT:  # they were meant for, in the order they came
            os.kill(os.getpid(), signum)
    raise KeyboardInterrupt  # Ctrl-C (or a handler that returned): the start abandoned


def _run_pending_handlers() -> None:
    """A Python-level call: signal handlers due run at its start."""
