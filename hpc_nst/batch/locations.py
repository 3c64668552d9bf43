"""Where a store and its inputs are on disk: what ``-o`` may name, and the inputs' stamps.

- :func:`store_exists`: whether ``-o`` names a store to resume, a place to create one (no such
  path, or an empty folder), or something that must not be written over (a file, a folder of
  other files, a broken or folder symlink, the current folder), which is refused.
- :func:`remove_dead_creations`: what a store's creation killed on this host left beside it.
- :func:`input_stamp`: ``size:mtime_ns`` of a pair's content and style files, so that a rerun
  can tell done pairs whose inputs changed since (:mod:`hpc_nst.batch.resume`).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

from hpc_nst.errors import StoreError

log = logging.getLogger(__name__)


def store_exists(path: str | Path) -> bool:
    """Whether ``-o path`` names a store to resume (False: one is created there, also in an
    empty folder); a file, a folder of other things, a symbolic link that is broken or leads
    to an empty folder, or the current folder itself is refused, as nothing may be written
    over it."""
    path = Path(path)
    fix = "nothing was changed. Choose a new path for -o (e.g. out/batch.zarr)"
    if path.is_symlink() and not path.exists():
        raise StoreError(f"{path}: a broken symbolic link (to {os.readlink(path)}); {fix}")
    if not path.exists():
        return False
    if not path.is_dir():
        raise StoreError(f"{path}: a file is there, not a store folder; {fix}")
    if (path / "zarr.json").is_file():
        return True
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        raise StoreError(f"{path}: cannot look into that folder ({exc.strerror}); {fix}") \
            from None
    if not empty:
        raise StoreError(f"{path}: a folder of other files is there, not an hpc-nst store (no "
                         "zarr.json); nothing was changed. Choose a new path for -o (e.g. "
                         f"{path / 'batch.zarr'})")
    if path.is_symlink():  # the store replaces what is at ``path``: not the link's target
        raise StoreError(f"{path}: a symbolic link to an empty folder; give the folder "
                         f"itself: -o {path.resolve()}")
    if path.resolve() == Path.cwd().resolve():
        raise StoreError(f"{path}: the current folder; {fix}")
    return False


def input_stamp(pair: Any, cache: dict[Path, str] | None = None) -> str:
    """``size:mtime_ns`` of the pair's content and style files ("|"-joined; "" for a file
    that is not there). The target is left out: the transfer never reads it. ``cache``:
    one ``stat`` per file however many pairs share it."""
    return files_stamp((pair.content_path, pair.style_path), cache)


def files_stamp(paths: tuple[Any, ...], cache: dict[Path, str] | None = None) -> str:
    """:func:`input_stamp` of the files ``paths`` (a manifest pair's, or a stored pair's
    resolved content and style)."""
    cache = {} if cache is None else cache
    parts = []
    for path in paths:
        if path not in cache:
            try:
                info = os.stat(path)
                cache[path] = f"{info.st_size}:{info.st_mtime_ns}"
            except (OSError, TypeError, ValueError):
                cache[path] = ""
        parts.append(cache[path])
    return "|".join(parts)


def stamps_differ(old: str, new: str) -> bool:
    """Whether an input file changed between two :func:`input_stamp` values (a file missing
    in either is not counted: a run cannot use it, and refuses the pair for that)."""
    return any(a and b and a != b for a, b in zip(str(old).split("|"), str(new).split("|")))


def remove_dead_creations(path: Path, host: str) -> None:
    """Remove what creations of ``path`` on this host by processes no longer alive left (a
    SIGKILL, or a signal during the clean-up of a failed creation)."""
    prefix = f".{path.name}.creating-{host}-"
    for stale in path.parent.glob(f"{glob.escape(prefix)}*"):
        pid = stale.name[len(prefix):]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except OSError:  # alive (another user's): not ours to remove
            continue


_PARTIAL_RE = re.compile(r"\.[0-9a-f]{32}\.partial$")


def remove_partial_writes(path: Path, min_age_s: float = 60.0) -> tuple[int, int]:
    """Remove the temporary files of chunk writes killed mid-way (zarr writes
    ``<chunk>.<32 hex>.partial`` and renames it; a SIGKILL or a node's loss leaves it, up to a
    shard's size each, for ever); call only under the store's lock, with no task running.
    One written to in the last ``min_age_s`` is left (a straggling worker of a run that
    died may still be finishing it). Returns how many files and bytes."""
    files = size = 0
    cutoff = time.time() - min_age_s
    for folder, _, names in os.walk(path):
        for name in names:
            if name.endswith(".partial") and _PARTIAL_RE.search(name):
                stale = Path(folder) / name
                try:
                    info = stale.stat()
                    if info.st_mtime > cutoff:
                        continue
                    stale.unlink()
                    files, size = files + 1, size + info.st_size
                except OSError:
                    continue
    if files:
        log.info("%s: removed %d file(s) (%.1f MB) of chunk writes killed mid-way", path, files,
                 size / 1e6)
    return files, size
