"""Signals held while a cluster starts: a Ctrl-C or SIGTERM there stops the run after it."""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)


def started_holding_signals(start: Any) -> Any:
    """``start()`` with SIGINT and SIGTERM held (main thread only).

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

    before = {signum: signal.signal(signum, hold) for signum in (signal.SIGTERM, signal.SIGINT)}
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
    if signal.SIGTERM in wanted:
        os.kill(os.getpid(), signal.SIGTERM)  # to the handler it was meant for
    raise KeyboardInterrupt  # Ctrl-C (or a SIGTERM handler that returned): start abandoned


def _run_pending_handlers() -> None:
    """A Python-level call: signal handlers due run at its start."""
