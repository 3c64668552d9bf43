"""Export formats: plain files, Hugging Face ``audiofolder``, Parquet and WebDataset shards.

Every format writes the dotfile ``.export.json`` beside the data (store, job, versions, counts,
columns; a dotfile, so folder loaders never read it as data: :mod:`.target`) and writes each
file atomically (temporary name, then rename), so an interrupted export leaves complete files
only, and rerunning it completes it with the same bytes as an uninterrupted one. Container
formats are rewritten as a whole on each run (a store with more pairs done gives a bigger
export); the audio files of a file-based export are kept from an earlier run only where they
hold the same audio (the store's checksum and the file's size, recorded in
``.export.files.json``). Files the
earlier export in the folder wrote and this one does not (pairs no longer exported, another
format's with ``--overwrite``) are removed. An output folder holding another store's export
is refused without ``--overwrite``.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpc_nst.batch.labels import label_sidecars
from hpc_nst.batch.reader import store_info
from hpc_nst.errors import UsageError
from hpc_nst.export import target
from hpc_nst.export.items import (
    CODECS,
    ExportItem,
    field_dtype,
    iter_items,
    to_json,
)
from hpc_nst.export.select import PairFilter
from hpc_nst.export.webdataset import CARD_NAME, write_webdataset
from hpc_nst.fsutil import atomic_path, atomic_write

log = logging.getLogger(__name__)
MANIFEST_NAME = target.MANIFEST_NAME
FILES_NAME = target.FILES_NAME
#: A Parquet row group is written once its items' audio reaches this many bytes (or
#: ``--shard-size`` items): long outputs never hold a thousand decoded clips in memory.
MAX_GROUP_BYTES = 256 << 20


@dataclass(frozen=True)
class ExportOptions:
    codec: str = "wav"
    overwrite: bool = False
    shard_size: int = 1000  # items per WebDataset tar / Parquet row group
    report: Path | None = None
    skip_bad: bool = False  # leave out pairs failing their checksum (default: refuse)
    where: str | None = None  # keep only the pairs matching it (:mod:`hpc_nst.export.select`)
    labels: tuple[Path, ...] = ()  # label CSVs besides the manifest's own and labels.csv
    dataset_card: bool = True  # WebDataset: write README.md (off where the user's is there)


Writer = Callable[[Iterator[ExportItem], Path, ExportOptions], dict[str, Any]]


class _AudioFiles:
    """The audio files of a file-based export (``<sub><pair_id>.<codec>``), each kept from an
    earlier run only where ``.export.files.json`` says it holds the same audio (the store's
    checksum of it, and the codec): a store made again at the same path, or a pair computed
    again, rewrites its file. (Files of pairs the earlier run wrote and this one does not are
    removed by :func:`export_store`, so the folder holds this export only.)"""

    def __init__(self, out: Path, sub: str, opts: ExportOptions) -> None:
        self.out, self.sub, self.opts = out, sub, opts
        self.written = self.kept = 0
        self.now: dict[str, str] = {}
        self.before = target.read_files_map(out)

    def put(self, item: ExportItem) -> str:
        """Write (or keep) ``item``'s file; its path relative to the export folder."""
        rel = f"{self.sub}{item.pair_id}.{self.opts.codec}"
        tag = f"{self.opts.codec}:{item.audio_digest}" if item.audio_digest else ""
        path = self.out / rel
        # kept where the record names this audio and the file still has the size written
        # (one cut short or replaced since is written again)
        if (tag and not self.opts.overwrite and path.is_file()
                and self.before.get(item.pair_id) == f"{tag}:{path.stat().st_size}"):
            self.kept += 1
            self.now[item.pair_id] = self.before[item.pair_id]
        else:
            data = item.encode(self.opts.codec)
            atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
            self.written += 1
            self.now[item.pair_id] = f"{tag}:{len(data)}" if tag else ""
        return rel

    def finish(self) -> dict[str, Any]:
        text = json.dumps(self.now, sort_keys=True)
        atomic_write(self.out / FILES_NAME, lambda tmp: Path(tmp).write_text(text, "utf-8"))
        paths = [f"{self.sub}{p}.{self.opts.codec}" for p in self.now]
        return {"written": self.written, "kept": self.kept, "paths": paths}


def _audio_with_metadata(items: Iterator[ExportItem], out: Path, opts: ExportOptions,
                         sub: str) -> dict[str, Any]:
    """``<sub><pair_id>.<codec>`` plus ``metadata.jsonl`` (every field, ``file_name`` the
    audio's)."""
    if sub:
        (out / sub).mkdir(parents=True, exist_ok=True)
    files = _AudioFiles(out, sub, opts)
    lines = [to_json({**item.fields, "file_name": files.put(item)}) for item in items]
    text = "".join(line + "\n" for line in lines)
    atomic_write(out / "metadata.jsonl", lambda tmp: Path(tmp).write_text(text, "utf-8"))
    done = files.finish()
    return {**done, "items": len(lines), "paths": ["metadata.jsonl", *done["paths"]],
            "files": ["metadata.jsonl", f"{sub}<pair_id>.{opts.codec}"]}


def _write_files(items: Iterator[ExportItem], out: Path, opts: ExportOptions) -> dict[str, Any]:
    """Plain ``<pair_id>.<codec>`` files with ``metadata.jsonl``: the metadata travels with
    plain files too, and the folder loads as a flat audiofolder."""
    return _audio_with_metadata(items, out, opts, target.AUDIO_SUB["wav"])


def _write_audiofolder(items: Iterator[ExportItem], out: Path,
                       opts: ExportOptions) -> dict[str, Any]:
    """``audio/<pair_id>.<codec>`` plus ``metadata.jsonl``: what
    ``datasets.load_dataset("audiofolder", data_dir=out)`` reads, metadata as columns."""
    return _audio_with_metadata(items, out, opts, target.AUDIO_SUB["audiofolder"])


def _arrow_type(key: str, values: list[Any]) -> Any:
    """A column's type, fixed by the first row group (:func:`field_dtype`)."""
    import pyarrow as pa

    return {"string": pa.string, "int64": pa.int64, "float64": pa.float64}[
        field_dtype(key, {type(v) for v in values})]()


def _write_parquet(items: Iterator[ExportItem], out: Path, opts: ExportOptions) -> dict[str, Any]:
    """``data.parquet``: one row per item, ``audio`` as ``{bytes, path}`` (the Hugging Face
    ``Audio`` feature, declared in the schema's metadata) and one column per field."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = out / "data.parquet"
    writer = None
    rows = 0
    batch: list[ExportItem] = []

    def flush() -> None:
        nonlocal writer, rows
        if not batch:
            return
        keys = list(batch[0].fields)
        cols: dict[str, Any] = {
            "audio": pa.array([{"bytes": i.encode(opts.codec),
                                "path": f"{i.pair_id}.{opts.codec}"} for i in batch],
                              pa.struct([("bytes", pa.binary()), ("path", pa.string())]))}
        for k in keys:
            values = [i.fields.get(k) for i in batch]
            cols[k] = pa.array(values, type=writer.schema.field(k).type if writer else
                               _arrow_type(k, values))
        table = pa.table(cols)
        if writer is None:
            features = {"audio": {"_type": "Audio"}}
            for f in table.schema:
                if f.name != "audio":
                    features[f.name] = {"_type": "Value", "dtype": str(f.type).replace(
                        "double", "float64").replace("large_string", "string")}
            meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
            writer = pq.ParquetWriter(tmp, table.schema.with_metadata(meta),
                                      compression="zstd")
        writer.write_table(table.cast(writer.schema))
        rows += len(batch)
        batch.clear()

    with atomic_path(path) as tmp:
        try:
            held = 0  # bytes of audio held for the row group: long outputs cap it sooner
            for item in items:
                batch.append(item)
                held += item.audio.nbytes
                if len(batch) >= opts.shard_size or held >= MAX_GROUP_BYTES:
                    flush()
                    held = 0
            flush()
        finally:
            if writer is not None:
                writer.close()
        if writer is None:  # every pair left out: no empty, schema-less file
            raise UsageError("no pair to export as Parquet: every done pair was left out "
                             "(by --where, or failing verification with --skip-bad)")
    return {"written": rows, "kept": 0, "items": rows, "files": ["data.parquet"],
            "paths": ["data.parquet"]}


#: Format name -> writer. ``wav``/``flac`` are plain files (``--codec`` is implied).
FORMATS: dict[str, Writer] = {
    "wav": _write_files, "flac": _write_files, "audiofolder": _write_audiofolder,
    "parquet": _write_parquet, "webdataset": write_webdataset,
}


def _write_card(out: Path, card: dict[str, Any]) -> None:
    text = json.dumps(card, indent=1, sort_keys=True, default=str)
    atomic_write(out / MANIFEST_NAME, lambda tmp: Path(tmp).write_text(text, "utf-8"))


def _reset_by_repair(root: Any, ids: Any, done: list[int]) -> list[str]:
    """The pairs ``hpc-nst verify --repair`` reset to pending (damaged in the store), not
    done again since."""
    from hpc_nst.batch import store as st
    from hpc_nst.batch.verify import REPAIR_RESET

    error, done_set = st.read_column(root, "error"), set(done)
    return [str(ids[i]) for i, e in enumerate(error)
            if i not in done_set and str(e).startswith(REPAIR_RESET)]


def _recorded(root: Any, ids: Any, wanted: list[str]) -> dict[str, str]:
    """Pair id -> the audio digest the store records for it, for the ids ``wanted``."""
    from hpc_nst.batch import store as st
    from hpc_nst.batch.verify import recorded_audio_digest

    if not st.has(root, "checksum"):
        return {}
    sums, want = st.read_column(root, "checksum"), set(wanted)
    return {str(p): recorded_audio_digest(str(c)) for p, c in zip(ids, sums) if str(p) in want}


def export_store(store: str | Path, out: str | Path, fmt: str = "wav",
                 opts: ExportOptions | None = None) -> dict[str, Any]:
    """Export every done pair of ``store`` to ``out`` as ``fmt``; returns counts.

    Everything that can refuse the export (the options, the folder, ``--report``, the
    ``--where`` field names, a Parquet export with no pair) is checked before the folder is
    made; a full disk stops it with an :class:`~hpc_nst.errors.HpcNstError`, and rerunning the
    same command then completes it (:mod:`.target`)."""
    from hpc_nst.batch import store as st

    opts = opts or ExportOptions()
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: must be one of {', '.join(FORMATS)}")
    if fmt in CODECS:
        opts = dataclasses.replace(opts, codec=fmt)
    if opts.codec not in CODECS:
        raise UsageError(f"--codec {opts.codec!r}: must be one of {', '.join(CODECS)}")
    if opts.shard_size < 1:
        raise UsageError(f"--shard-size {opts.shard_size}: must be at least 1")
    selection = PairFilter(opts.where) if opts.where is not None else None
    info = store_info(store)
    out = Path(out)
    here = str(info.path.resolve())
    target.check_target(out, here, fmt, opts.overwrite, target.read_card(out)[0], fmt in CODECS)
    root = st.open_root(info.path)
    status = st.read_column(root, "status")
    st.warn_lost(info.path, status)
    done = [int(i) for i in (status == st.DONE).nonzero()[0]]
    if not done and fmt not in CODECS:
        raise UsageError(f"{info.path}: no pair is done yet, nothing to export (see hpc-nst "
                         "status)")
    bad: list[str] = []  # pair ids left out by --skip-bad
    items = iter_items(info, only=done, report=opts.report, skip_bad=opts.skip_bad, bad=bad,
                       labels=list(opts.labels))
    if opts.codec == "flac":  # the gain a FLAC file is written with travels with it
        items = (item.with_flac_gain() for item in items)
    counts: dict[str, int] = {"left_out": 0}
    if selection is not None:  # (its field names checked here, before any write)
        items = selection.apply(items, opts.report is not None, counts)
    first = next(items, None)  # the report read, the first items checked: still nothing written
    if first is None and fmt == "parquet":
        raise UsageError("no pair to export as Parquet: every done pair was left out (by "
                         "--where, or failing verification with --skip-bad); nothing written")
    if first is None and (selection is not None or bad) and (earlier := _earlier_files(out)):
        # (an empty dataset is a filter's answer, into a new folder; but over an earlier
        # export it would remove every file of it: a --where typo must not empty a dataset)
        raise UsageError(f"no pair to export: every done pair was left out (by --where, or "
                         "failing verification with --skip-bad), and exporting none would "
                         f"remove the {len(earlier)} file(s) of the earlier export in {out}; "
                         "nothing written or removed (export into a new folder for an empty "
                         "dataset)")
    if first is not None:
        items = itertools.chain([first], items)
    card = {"store": here, "format": fmt, "codec": opts.codec,
            "job": info.job, "job_label": info.label, "job_digest": info.attrs.get("job_digest"),
            "manifest": info.attrs.get("manifest"), "versions": info.attrs.get("versions"),
            "sample_rate": info.sample_rate, "metadata_columns": list(info.metadata_columns),
            "report": str(opts.report) if opts.report else None, "where": opts.where,
            "labels": [str(p) for p in (*label_sidecars(info.manifest), *opts.labels)]}
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if target.write_error(out, exc) is not None:
                raise
            raise UsageError(f"{out}: cannot make the export folder ({exc.strerror}); give a "
                             "folder you can write") from None
        with target.ExportLock(out):
            result = _write_locked(out, fmt, opts, card, root, done, items, bad,
                                   {"not_done": int(len(status) - len(done))}, counts)
    except OSError as exc:
        error = target.write_error(out, exc)
        if error is None:
            raise
        raise error from exc
    log.info("exported %s pair(s) of %s to %s as %s", result.get("items", result["written"]),
             info.path, out, fmt)
    return result


def _write_locked(out: Path, fmt: str, opts: ExportOptions, card: dict[str, Any], root: Any,
                  done: list[int], items: Iterator[ExportItem], bad: list[str],
                  result: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """The writing part of :func:`export_store`, under the folder's lock. The folder is read
    (and checked) again here: another export may have finished in it since the first check."""
    from hpc_nst.batch import store as st

    before, before_path = target.read_card(out)
    target.check_target(out, card["store"], fmt, opts.overwrite, before, fmt in CODECS)
    before_map = target.read_files_map(out)
    earlier = target.listed_files(before, before_map) if before is not None else set()
    ids = st.read_column(root, "pair")
    may_write = target.may_write(fmt, opts.codec, [str(ids[i]) for i in done], opts.shard_size)
    if not opts.overwrite:
        target.refuse_foreign_files(out, may_write, earlier)
    if fmt == "webdataset":  # the card only where no README.md of the user's would go
        ours = target.dataset_card_ours(out, CARD_NAME, before, earlier)
        opts = dataclasses.replace(opts, dataset_card=ours)
        may_write += [CARD_NAME] if ours else []
    _write_card(out, {**card, "complete": False, "replacing": sorted(earlier),
                      "may_write": may_write})
    written = FORMATS[fmt](items, out, opts)
    produced = list(written.pop("paths"))  # (a copy: "files" may be the same list)
    # pairs failing verification: left out (--skip-bad), or reset by `verify --repair` and
    # not computed again yet; an earlier export's file of one may be its last good copy
    failing = [*bad, *_reset_by_repair(root, ids, done)]
    if failing and not opts.overwrite and opts.where is None:  # (not another store's files,
        # nor pairs --where leaves out)
        produced += target.keep_left_out(out, fmt, before_map, _recorded(root, ids, failing))
    if fmt == "webdataset" and not opts.dataset_card:  # an edited card: the user's now
        produced.append(CARD_NAME)  # (kept, and no longer listed as this export's)
    written["removed"] = target.remove_stale(out, earlier, produced)
    target.remove_temporaries(out, set(produced) | set(earlier))
    if fmt not in target.AUDIO_SUB:  # a file-based export's record, now replaced
        (out / FILES_NAME).unlink(missing_ok=True)
    result = {**written, **result, "left_out_by_where": counts["left_out"],
              "left_out_bad": len(bad), "left_out_bad_ids": list(bad)}
    _write_card(out, {**card, **result, "complete": True})
    if before_path is not None and before_path.name != MANIFEST_NAME:
        target.drop_old_names(out)  # a folder of an earlier release: now the dotfiles
    return result


def _earlier_files(out: Path) -> list[str]:
    """The files of an earlier export in ``out`` that are there (those an export removes)."""
    card = target.read_card(out)[0] if out.is_dir() else None
    listed = target.listed_files(card, target.read_files_map(out)) if card else set()
    return sorted(rel for rel in listed if (out / rel).is_file())
