"""The export folder: its sidecars, the checks before writing, and what an earlier export left.

An export folder holds two sidecars, both dotfiles so that folder loaders
(``pyarrow.parquet.read_table(DIR)``, ``pandas.read_parquet(DIR)``,
``datasets.load_dataset(..., data_dir=DIR)``) never read them as data: ``.export.json`` (the
card: store, format, counts, and the files it wrote) and, for the file-based formats,
``.export.files.json`` (pair id -> ``"<codec>:<audio checksum>"`` of each audio file). Folders
written by earlier releases have them as ``export.json`` / ``export.files.json``: they are still
recognised, and replaced by the dotfiles on the next export there.

Before writing any data, an export writes a card marked ``"complete": false`` that lists the
files it may write and those of the earlier export it replaces; an export stopped part-way
(a full disk) is thus still recognised as ours, and rerunning it removes what neither the
finished export nor its data needs. Only files a card lists are ever removed.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from hpc_nst.batch.lock import StoreLock
from hpc_nst.errors import HpcNstError, UsageError
from hpc_nst.fsutil import atomic_write

log = logging.getLogger(__name__)

MANIFEST_NAME = ".export.json"
#: pair id -> "<codec>:<audio checksum>:<file size>" (file-based formats; earlier releases
#: wrote no size, and their files are written again once)
FILES_NAME = ".export.files.json"
#: The names earlier releases gave them (plain names, which folder loaders read as data).
OLD_NAMES = {MANIFEST_NAME: "export.json", FILES_NAME: "export.files.json"}
#: Where a file-based format puts its audio files, by format.
AUDIO_SUB = {"wav": "", "flac": "", "audiofolder": "audio/"}
#: Held while an export writes into its folder: a second export into the same folder is
#: refused (it would remove the first one's temporaries and overwrite its card).
LOCK_NAME = ".export.lock"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NOT_WRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


class ExportLock(StoreLock):
    """One export at a time into a folder (a dotfile, which folder loaders never read; taken
    over when its owner is gone, as a store's lock is)."""

    name, user, kind = LOCK_NAME, "export", "export folder"

    def busy(self) -> bool:
        """Whether another export holds the lock now (its owner alive, or unknown)."""
        return self.file.is_file() and not self._stale()


def _read_json(out: Path, name: str) -> tuple[Any, Path | None]:
    """The parsed sidecar ``name`` of ``out`` (or its old name) and its path; (None, None)
    where neither is there or readable."""
    for path in (out / name, out / OLD_NAMES[name]):
        if path.is_file():
            try:
                return json.loads(path.read_text("utf-8")), path
            except (OSError, ValueError):
                return None, path
    return None, None


def read_card(out: Path) -> tuple[dict[str, Any] | None, Path | None]:
    """The card of the export in ``out`` (None where there is none, or where the file is not
    an hpc-nst card: an ``export.json`` of someone else's) and the file it was read from."""
    card, path = _read_json(out, MANIFEST_NAME)
    keys = ("store", "format", "job_digest", "versions")  # every hpc-nst card has them all
    if isinstance(card, dict) and all(k in card for k in keys):
        return card, path
    if path is not None and path.name == MANIFEST_NAME:  # ours, but unreadable
        return {}, path
    return None, None


def read_files_map(out: Path) -> dict[str, str]:
    """``pair id -> "<codec>:<checksum>"`` of the file-based export in ``out`` ({} if none)."""
    got, _ = _read_json(out, FILES_NAME)
    return {str(k): str(v) for k, v in got.items()} if isinstance(got, dict) else {}


def check_target(out: Path, store: str, fmt: str, overwrite: bool,
                 card: dict[str, Any] | None, plain: bool) -> None:
    """Refuse to write into ``out`` where that would mix with (or replace, without
    ``overwrite``) something else: a file, a folder of other files, another export."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out}: it is a file, not a folder; name a new folder (or one "
                         "holding an earlier export) to export into")
    if card is None:
        # plain files may go into a folder of other files, but never over someone's own
        # metadata.jsonl (which they now write beside the audio)
        mixed = not plain or (out / "metadata.jsonl").exists()
        ours = (LOCK_NAME, f"{LOCK_NAME}.guard")  # a killed first export's lock
        if mixed and out.is_dir() and any(p.name not in ours for p in out.iterdir()) \
                and not overwrite:
            raise UsageError(f"{out} is not empty and holds no hpc-nst export: export to a new "
                             "folder, or pass --overwrite to write into it anyway")
        return
    same = (card.get("store"), card.get("format")) == (store, fmt)
    if not same and not overwrite:
        state = "" if card.get("complete", True) else \
            " (being written now)" if ExportLock(out).busy() else " (stopped part-way)"
        raise UsageError(f"{out} holds an export of {card.get('store')!r} as "
                         f"{card.get('format')!r}{state}; export to another folder, or pass "
                         "--overwrite to replace it")


def refuse_foreign_files(out: Path, names: Iterable[str], ours: set[str]) -> None:
    """Refuse (before writing) to replace files an export would write that no earlier export
    here wrote: a user's own ``<pair_id>.wav`` beside the outputs (plain formats may go into
    a folder of other files) would be overwritten, then recorded as ours and removed by a
    later export."""
    foreign = [rel for rel in names if rel not in ours and (out / rel).exists()]
    if foreign:
        raise UsageError(f"{out}: {len(foreign)} file(s) named as this export names its "
                         "outputs (one per done pair of the store) are there already and no "
                         f"hpc-nst export wrote them ({', '.join(foreign[:3])}"
                         f"{', ...' if len(foreign) > 3 else ''}); export to another folder, "
                         "or pass --overwrite to replace them")


def _safe(rel: str) -> bool:
    p = PurePosixPath(rel)
    return bool(rel) and "<" not in rel and not p.is_absolute() and ".." not in p.parts


def listed_files(card: dict[str, Any] | None, files_map: dict[str, str]) -> set[str]:
    """The files (relative paths) the export described by ``card`` wrote, or may have
    written where it stopped part-way, and those of the exports it was replacing."""
    if not card:
        return set()
    fmt, codec = str(card.get("format")), str(card.get("codec") or card.get("format"))
    listed: set[str] = set()
    if fmt in AUDIO_SUB:
        listed.add("metadata.jsonl")
        for pair_id, tag in files_map.items():
            listed.add(f"{AUDIO_SUB[fmt]}{pair_id}.{tag.partition(':')[0] or codec}")
    for key in ("files", "may_write", "replacing"):
        value = card.get(key)
        if isinstance(value, list):
            listed.update(str(v) for v in value)
    return {rel for rel in listed if _safe(rel)}


def may_write(fmt: str, codec: str, pair_ids: list[str], shard_size: int) -> list[str]:
    """The files an export of ``pair_ids`` (at most) as ``fmt`` may write."""
    if fmt in AUDIO_SUB:
        return ["metadata.jsonl", *(f"{AUDIO_SUB[fmt]}{p}.{codec}" for p in pair_ids)]
    if fmt == "parquet":
        return ["data.parquet"]
    shards = -(-len(pair_ids) // shard_size)
    return [f"shard-{k:06d}.tar" for k in range(shards)]  # (README.md: dataset_card_ours)


def remove_stale(out: Path, earlier: Iterable[str], produced: Iterable[str]) -> int:
    """Remove the files of ``earlier`` that this export did not write; how many there were.
    An ``audio/`` folder left empty by it goes too."""
    keep = set(produced)
    removed = 0
    for rel in sorted(set(earlier) - keep):
        path = out / rel
        if path.is_file() and not path.is_symlink():
            path.unlink()
            removed += 1
    subs = {PurePosixPath(rel).parts[0] for rel in earlier if "/" in rel}
    for sub in sorted(subs):
        folder = out / sub
        if folder.is_dir() and not any(folder.iterdir()) and not any(
                rel.startswith(f"{sub}/") for rel in keep):
            folder.rmdir()
    return removed


def keep_left_out(out: Path, fmt: str, before_map: dict[str, str],
                  recorded: dict[str, str]) -> list[str]:
    """The files an earlier export of this store wrote for pairs this one leaves out as
    failing verification (``--skip-bad``; ``recorded``: their ids -> the audio digest the
    store records for them), kept where the file holds exactly that audio (digest and size
    as written): the last good copy of audio damaged in the store since. Their entries stay
    in the files record; their relative paths returned."""
    if fmt not in AUDIO_SUB:
        return []
    kept = {}
    for pair_id, digest in recorded.items():
        tag = before_map.get(pair_id, "")
        codec, _, rest = tag.partition(":")
        rel = f"{AUDIO_SUB[fmt]}{pair_id}.{codec}"
        path = out / rel
        if (digest and rest.rpartition(":")[0] == digest and _safe(rel) and path.is_file()
                and not path.is_symlink() and rest.rpartition(":")[2] == str(
                    path.stat().st_size)):
            kept[pair_id] = (rel, tag)
    if kept:
        now = read_files_map(out)
        now.update({pair_id: tag for pair_id, (_, tag) in kept.items()})
        text = json.dumps(now, sort_keys=True)
        atomic_write(out / FILES_NAME, lambda tmp: Path(tmp).write_text(text, "utf-8"))
        log.warning("%s: kept %d file(s) of an earlier export for pairs failing verification "
                    "(left out, or reset by verify --repair and not computed again: %s): the "
                    "last good copy of their audio",
                    out, len(kept), ", ".join(sorted(kept)[:5]))
    return [rel for rel, _ in kept.values()]


def remove_temporaries(out: Path, names: Iterable[str]) -> int:
    """Remove the temporary files an export killed mid-write left beside ``names`` (files it
    writes, relative to ``out``): ``.<name>.<8 characters>[<suffix>]``, as
    :func:`hpc_nst.fsutil.atomic_path` names them; how many there were. Each folder is
    listed once (an export may hold a hundred thousand files)."""
    import re

    temporary = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)?$")
    by_folder: dict[Path, set[str]] = {}
    for rel in set(names) | {MANIFEST_NAME, FILES_NAME, "metadata.jsonl"}:
        by_folder.setdefault((out / rel).parent, set()).add(PurePosixPath(rel).name)
    removed = 0
    for folder, wanted in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in os.scandir(folder):
            m = temporary.match(entry.name)
            if (m and m["name"] in wanted and (m["suffix"] or "") == Path(m["name"]).suffix
                    and entry.is_file(follow_symlinks=False)):
                os.unlink(entry.path)
                removed += 1
    return removed


def drop_old_names(out: Path) -> None:
    """Remove the sidecars under the names of earlier releases (replaced by the dotfiles)."""
    for old in OLD_NAMES.values():
        (out / old).unlink(missing_ok=True)


def write_error(out: Path, exc: OSError) -> HpcNstError | None:
    """The one-line error for an export stopped by its output folder (full, read-only), or
    None for any other OSError."""
    if exc.errno in _NO_SPACE:
        log.debug("export to %s stopped: %s", out, exc)
        return HpcNstError(f"{out}: no space left to write the export ({exc.strerror or exc}); "
                           "free space (or export to another disk) and rerun the same "
                           "command: it picks up the folder as it is and completes the export")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return HpcNstError(f"-o {out}: cannot make the folder, a part of its path is a file "
                           f"({exc.filename or out}); name another folder")
    if exc.errno in _NOT_WRITABLE:
        return HpcNstError(f"{out}: cannot write the export there ({exc.strerror or exc}: "
                           f"{exc.filename or out}); make it writable or export to another "
                           "folder")
    return None


def dataset_card_ours(out: Path, name: str, before: dict[str, Any] | None,
                      earlier: set[str]) -> bool:
    """Whether the export may write its dataset card ``name`` (README.md) in ``out``: there
    is none, or the one there is an earlier export's, unchanged since (its digest as the
    card recorded it; a card written by an export that stopped before recording it counts
    as unchanged, one of a complete export without a digest does not). A README.md of the
    user's own, or one edited since, is left as it is."""
    import hashlib

    path = out / name
    if path.is_symlink():  # (a link, even a dangling one, is the user's doing)
        return False
    if not path.exists():
        return True
    if name not in earlier or not path.is_file():
        return False
    recorded = (before or {}).get("card_sha256")
    if recorded is None:  # written by an export that stopped before recording it: its own
        return (before or {}).get("complete") is False
    return hashlib.sha256(path.read_bytes()).hexdigest() == recorded
