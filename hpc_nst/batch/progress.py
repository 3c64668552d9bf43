"""A progress line: pairs done / failed / remaining, throughput and ETA.

On a terminal the line is rewritten in place (at least every second, so elapsed time and ETA
stay live while long tasks run); otherwise (batch logs) a full line is printed every
``interval`` seconds while pairs are in flight, and always at the end.
"""

from __future__ import annotations

import threading
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts of this run's pairs on top of the store's state when the run started.

    ``counts`` are the store's done/failed/pending counts, not counting the pairs of this run.
    """

    def __init__(self, todo: int, counts: dict[str, int], out: TextIO, interval: float = 10.0,
                 quiet: bool = False):
        self.todo, self.out, self.interval, self.quiet = todo, out, interval, quiet
        self.done0, self.failed0 = counts["done"], counts["failed"]
        self.total = counts["done"] + counts["failed"] + counts["pending"] + todo
        self.done = self.failed = 0
        self.t0 = self.last = time.monotonic()
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.width = 0
        self.printed = ""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._show(force=True)
        self._ticker = threading.Thread(target=self._tick, name="hpc-nst-progress", daemon=True)
        if not quiet:
            self._ticker.start()

    def _tick(self) -> None:
        # (at least a second: --progress-interval 0, a line at every update, must not spin)
        period = 1.0 if self.tty else max(self.interval, 1.0)
        while not self._stop.wait(period):
            self._show(force=not self.tty)

    def line(self) -> str:
        finished = self.done + self.failed
        remaining = self.todo - finished
        elapsed = time.monotonic() - self.t0
        rate = finished / elapsed if elapsed > 0 and finished else 0.0
        eta = _duration(remaining / rate) if rate > 0 else "?"
        return (f"[hpc-nst run] {self.done0 + self.done}/{self.total} done, "
                f"{self.failed0 + self.failed} failed, "
                f"{remaining} remaining | {rate * 3600:.0f} pairs/h | "
                f"elapsed {_duration(elapsed)} | ETA {eta}")

    def _show(self, force: bool = False) -> None:
        if self.quiet:
            return
        with self._lock:
            self._show_locked(force)

    def _show_locked(self, force: bool) -> None:
        now = time.monotonic()
        if self.tty:
            if force or now - self.last >= 0.25:
                text = self.line()
                print("\r" + text.ljust(self.width), end="", file=self.out, flush=True)
                self.width = len(text)
                self.last = now
        elif force or now - self.last >= self.interval:
            text = self.line()
            if text != self.printed:
                print(text, file=self.out, flush=True)
            self.printed, self.last = text, now

    def update(self, done: int, failed: int) -> None:
        self.done += done
        self.failed += failed
        self._show()

    def close(self) -> None:
        self._stop.set()
        self._show(force=True)
        if self.tty and not self.quiet:
            print(file=self.out, flush=True)
