"""Argument types and checks shared by several commands (no command imports another for
them: ``run`` uses ``transfer``'s job arguments, ``transfer`` these)."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from hpc_nst.config import JobConfig

log = logging.getLogger(__name__)

#: What ``--device`` accepts (every command that has it).
DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")


def device_arg(text: str) -> str:
    """argparse type of ``--device``: auto, cpu, cuda or cuda:N."""
    value = text.strip().lower()
    if not DEVICE_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{text!r}: choose auto, cpu, cuda or cuda:N")
    return value


def warn_unread(cfg: JobConfig, overrides: dict[str, str]) -> None:
    """Warn about ``--set`` keys the job's method never reads (the optimisation's, for a
    method that does not optimise): they change nothing but the job's digest."""
    from hpc_nst.engine.methods.base import unread_overrides

    unread = unread_overrides(cfg, list(overrides))
    if unread:
        log.warning("--set %s: method %s does not optimise and never reads %s; %s only the "
                    "job's digest (a store of it is another job than one without): leave "
                    "%s out", ", ".join(unread), cfg.method,
                    "it" if len(unread) == 1 else "them",
                    "it changes" if len(unread) == 1 else "they change",
                    "it" if len(unread) == 1 else "them")


#: Exit code of a command stopped by SIGTERM (128 + 15, as a process killed by it).
TERM_EXIT = 143


@contextmanager
def stop_on_sigterm(command: str) -> Iterator[None]:
    """SIGTERM (``scancel``, ``timeout``, a batch system's time limit) stops the command as
    Ctrl-C does, through its clean-up (``finally`` blocks), with exit code 143."""
    def stop(signum: int, frame: object) -> None:
        print(f"hpc-nst {command}: stopped by SIGTERM", file=sys.stderr)
        raise SystemExit(TERM_EXIT)

    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, stop) if main_thread else None
    try:
        yield
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)
