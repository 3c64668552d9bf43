"""One driver per store: an exclusive lock file inside it (host, pid, start time and, under
Slurm, the job and its restart count)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path

from hpc_nst.errors import StoreError

LOCK_NAME = ".hpc_nst.lock"
#: A lock file with no owner in it (its writer died or ran out of space between creating and
#: writing it, with the fallback below) counts as stale after this many seconds.
EMPTY_STALE_S = 30.0


def slurm_incarnation() -> str:
    """``slurm=<job id>:<restart count>`` inside a Slurm job ("" outside one): a requeued
    driver has the same job id and a higher restart count."""
    job = os.environ.get("SLURM_JOB_ID", "")
    return f"slurm={job}:{os.environ.get('SLURM_RESTART_COUNT', '0')}" if job else ""


class StoreLock:
    """An exclusive lock file inside the store: one driver per store at a time.

    The lock is created with its owner already in it (written to a temporary file, then
    hard-linked to the lock's name, which fails if the lock exists), so no crash or full disk
    leaves an empty lock behind. A lock is taken over when it is stale: its owner ran on this
    host and is gone; or it was left by an earlier incarnation of this Slurm job (a driver
    killed by a node failure or preemption and requeued, maybe onto another node); or it is
    empty and older than :data:`EMPTY_STALE_S`."""

    #: The lock file's name inside the folder, and who takes it (for the messages).
    name, user, kind = LOCK_NAME, "run", "store"

    def __init__(self, path: str | Path):
        self.file = Path(path) / self.name
        self.held = False

    def __enter__(self) -> StoreLock:
        me = " ".join(filter(None, (socket.gethostname(), str(os.getpid()),
                                    time.strftime("%Y-%m-%dT%H:%M:%S"), slurm_incarnation())))
        for _ in range(2):
            try:
                self._create(me + "\n")
            except FileExistsError:
                if not self._stale():
                    raise StoreError(
                        f"{self.file.parent} is in use by another {self.user} ({self._owner()}); "
                        f"if that {self.user} is dead, delete {self.file}") from None
                # Take the stale lock over under a guard: of two drivers doing this at once,
                # the second re-checks after the first and finds the first's fresh lock.
                with open(self.file.with_name(f"{self.name}.guard"), "a") as guard:
                    fcntl.flock(guard, fcntl.LOCK_EX)
                    if self._stale():
                        self.file.unlink(missing_ok=True)
                continue
            except OSError as exc:
                full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
                raise StoreError(f"{self.file.parent}: cannot take the {self.kind}'s lock: "
                                 f"{exc.strerror or exc}; "
                                 + ("free space there and rerun" if full else
                                    f"is the {self.kind} writable?")) from exc
            self.held = True
            return self
        raise StoreError(f"could not take the lock {self.file}")

    def _owner(self) -> str:
        """Who holds the lock, in words (:func:`describe_owner`)."""
        try:
            return describe_owner(self.file.read_text())
        except OSError:
            return "owner unknown"

    def _create(self, text: str) -> None:
        """The lock file with ``text`` in it, or FileExistsError."""
        tmp = self.file.with_name(f"{self.name}.{socket.gethostname()}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text)
            try:
                os.link(tmp, self.file)
                return
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links: exclusive create, then write
                pass
        finally:
            tmp.unlink(missing_ok=True)
        fd = os.open(self.file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        except BaseException:
            self.file.unlink(missing_ok=True)
            raise

    def _stale(self) -> bool:
        if owner_alive(self.file) is False:
            return True
        try:
            text, age = self.file.read_text(), time.time() - self.file.stat().st_mtime
        except OSError:
            return False
        if not text.strip():
            return age > EMPTY_STALE_S
        mine = slurm_incarnation()
        theirs = next((t for t in text.split() if t.startswith("slurm=")), "")
        if mine and theirs:
            (job, _, restart), (their_job, _, their_restart) = (
                mine[6:].partition(":"), theirs[6:].partition(":"))
            return job == their_job and _int(their_restart) < _int(restart)
        return False

    def __exit__(self, *exc: object) -> None:
        if self.held:
            self.file.unlink(missing_ok=True)
            self.held = False


def describe_owner(text: str) -> str:
    """A lock file's content (``host pid started [slurm=job:restart]``) in words:
    ``host vm, pid 22448, started 2026-12-07T08:55:32[, Slurm job 51 (restart 0)]``."""
    words = text.split()
    if not words:
        return "owner unknown: the lock file is empty"
    slurm = next((w for w in words if w.startswith("slurm=")), "")
    words = [w for w in words if w != slurm]
    parts = [f"{label} {value}" for label, value in zip(("host", "pid", "started"), words)]
    parts += words[3:]
    if slurm:
        job, _, restart = slurm[6:].partition(":")
        parts.append(f"Slurm job {job} (restart {restart or 0})")
    return ", ".join(parts)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return -1


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
