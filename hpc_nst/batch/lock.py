"""One driver per store: an exclusive lock file inside it (host, pid, start time)."""

from __future__ import annotations

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
                self.file.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(me + "\n")
            self.held = True
            return self
        raise StoreError(f"could not take the lock {self.file}")

    def _stale(self) -> bool:
        """True when the owner ran on this host and its process is gone."""
        try:
            host, pid, _ = self.file.read_text().split(maxsplit=2)
        except (OSError, ValueError):
            return False
        if host != socket.gethostname():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, ValueError):
            return False
        return False

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.file.unlink(missing_ok=True)
            self.held = False
