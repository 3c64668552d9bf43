"""Atomic file writes that respect the umask (outputs on shared filesystems stay readable)."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: A write that failed for want of space or of a writable, working disk: said in one line with
#: what to do (free space, rerun), not as a traceback.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``.

    Readers never see a partial file, and a failure leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as exc:  # named by the file asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def unwritable_reason(path: str | Path) -> str | None:
    """Why files cannot be created in the directory ``path`` (or, when it does not exist yet,
    in its nearest existing parent), or None when they can.

    Probes by creating and removing a file, since permission bits say nothing for root or
    for a read-only mount.
    """
    where = Path(path)
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".hpc_nst.write-probe.")
    except OSError as exc:
        return f"{exc.strerror or exc} ({where})"
    os.close(fd)
    os.unlink(tmp)
    return None


def check_output_file(path: Path, flag: str, what: str, example: str) -> None:
    """Refuse, before any work, an output file path that is a folder or lies under a file
    (a :class:`~hpc_nst.errors.UsageError` naming ``flag``; ``what``: the name asked for,
    ``example``: a file name to suggest inside the folder)."""
    from hpc_nst.errors import UsageError

    if path.is_dir():
        raise UsageError(f"{flag} {path}: a folder; give {what} (e.g. {path / example})")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"{flag} {path}: {parent} is a file, not a folder")
    reason = unwritable_reason(path.parent)
    if reason:
        raise UsageError(f"{flag} {path}: cannot write there: {reason}")


def highest_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet: what
    making ``path`` creates, and removing it undoes (None where ``path`` exists)."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing = folder
    return missing


def settle_store_io(timeout: float = 10.0) -> bool:
    """Let the store reads and writes that an interrupted call left running finish.

    zarr runs its I/O on its own event loop thread; a Ctrl-C or SIGTERM raised in the main
    thread while it waits for one leaves that work running, and at exit zarr's clean-up shut
    its executor down under it: tasks destroyed mid-way (tracebacks on stderr after "stopped
    by SIGTERM") and writes cancelled. Called by the CLI before it exits; a no-op (False)
    where zarr was never used or nothing is pending. True where something was waited for."""
    import sys

    sync = sys.modules.get("zarr.core.sync")
    loop = getattr(sync, "loop", [None])[0] if sync is not None else None
    if loop is None or loop.is_closed() or not loop.is_running():
        return False
    import asyncio

    async def others() -> bool:
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        return bool(pending)

    future = asyncio.run_coroutine_threadsafe(others(), loop)
    try:
        return future.result(timeout + 1)
    except BaseException:  # noqa: BLE001 - best effort on the way out (a second Ctrl-C too)
        future.cancel()
        return False
