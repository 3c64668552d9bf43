"""One driver per store: an exclusive lock file inside it (host, pid, start time)."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from hpc_nst.errors import StoreError

LOCK_NAME = ".hpc_nst.lock"


class StoreLock:
    """An exclusive lock file inside the store: one driver per store at a time."""

    def __init__(self, path: str | Path):
        self.file = Path(path) / LOCK_NAME
        self.held = False

    def __enter__(self) -> StoreLock:
        me = f"{socket.gethostname()} {os.getpid()} {time.strftime('%Y-%m-%dT%H:%M:%S')}"
        for _ in range(2):
            try:
                fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._stale():
                    owner = self.file.read_text().strip() if self.file.exists() else "?"
                    raise StoreError(
                        f"{self.file.parent} is in use by another run (host pid started: "
                        f"{owner}); if that run is dead, delete {self.file}") from None
                # Take the stale lock over under a guard: of two drivers doing this at once,
                # the second re-checks after the first and finds the first's fresh lock.
                with open(self.file.with_name(f"{LOCK_NAME}.guard"), "a") as guard:
                    fcntl.flock(guard, fcntl.LOCK_EX)
                    if self._stale():
                        self.file.unlink(missing_ok=True)
                continue
            except OSError as exc:
                raise StoreError(f"{self.file.parent}: cannot take the store's lock: "
                                 f"{exc.strerror or exc}; is the store writable?") from exc
            with os.fdopen(fd, "w") as fh:
                fh.write(me + "\n")
            self.held = True
            return self
        raise StoreError(f"could not take the lock {self.file}")

    def _stale(self) -> bool:
        """True when the owner ran on this host and its process is gone."""
        return owner_alive(self.file) is False

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.file.unlink(missing_ok=True)
            self.held = False


def owner_alive(file: Path) -> bool | None:
    """Whether the process holding the lock ``file`` lives: None when unknown (another host,
    no or unreadable lock)."""
    try:
        host, pid, _ = file.read_text().split(maxsplit=2)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return None
    return True
