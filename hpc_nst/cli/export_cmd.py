"""``hpc-nst export STORE -o DIR``: the done pairs' audio and metadata in a format ML users load.

``--format wav|flac`` (default ``wav``): ``<pair_id>.<format>`` files and ``metadata.jsonl``;
``audiofolder``: a Hugging Face ``datasets`` AudioFolder (``metadata.jsonl`` + ``audio/``);
``parquet``: ``data.parquet`` with the audio bytes and every field; ``webdataset``: tar shards of
``--shard-size`` items; and in each, the dotfile ``.export.json`` (what was exported, counts).
See :mod:`hpc_nst.export`.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    from hpc_nst.export.formats import FORMATS

    p = sub.add_parser("export", help="write a batch store's outputs as files or a dataset")
    p.add_argument("store", type=Path, help="the Zarr store written by hpc-nst run")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR")
    p.add_argument("--format", choices=tuple(FORMATS), default=None,
                   help="wav/flac: <pair_id>.<format> files + metadata.jsonl (default: "
                        "wav, or flac with --codec flac); audiofolder: Hugging Face "
                        "AudioFolder; parquet; webdataset (tar shards)")
    p.add_argument("--codec", choices=("wav", "flac"), default=None,
                   help="audio encoding inside audiofolder/parquet/webdataset (default: wav, "
                        "32-bit float as stored; flac: 24-bit)")
    p.add_argument("--shard-size", type=int, default=None, metavar="N",
                   help="items per WebDataset shard / Parquet row group (default: 1000)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="a folder written by hpc-nst report: add its per-pair metrics")
    p.add_argument("--labels", type=Path, action="append", default=[], metavar="CSV",
                   help="content_label/style_label per pair_id (repeatable; besides the "
                        "label columns of the manifest, or labels.csv beside it, which "
                        "hpc-nst dataset triplets writes)")
    p.add_argument("--where", metavar="EXPR",
                   help="keep only the pairs whose fields satisfy EXPR, e.g. \"judge_top1 == 1\" "
                        "(the EQ-proof judge hears the style; report metrics need --report) or "
                        "\"lsd_db < 12 and split == 'train'\"; see hpc_nst/export/select.py")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave out pairs whose audio fails its checksum (default: refuse to "
                        "export; see hpc-nst verify)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace another store's export in DIR, or files there that no "
                        "export wrote under the names this one writes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hpc_nst.cli.args import stop_on_sigterm
    from hpc_nst.export.formats import ExportOptions, export_store

    if args.format is None:  # plain files, of the codec asked for (--codec flac alone)
        args.format = args.codec if args.codec in ("wav", "flac") else "wav"
    if args.format in ("wav", "flac") and args.codec not in (None, args.format):
        from hpc_nst.errors import UsageError

        raise UsageError(f"--codec {args.codec} with --format {args.format}: the format is the "
                         f"codec of plain files; use --format {args.codec}")
    if args.shard_size is not None and args.shard_size < 1:
        from hpc_nst.errors import UsageError

        raise UsageError(f"--shard-size {args.shard_size}: give a number of items, at least 1")
    if args.shard_size is not None and args.format not in ("parquet", "webdataset"):
        log.warning("--shard-size: %s writes one file per pair, no shards or row groups; "
                    "ignored", args.format)
    opts = ExportOptions(codec=args.codec or "wav", overwrite=args.overwrite,
                         shard_size=args.shard_size or 1000, report=args.report,
                         skip_bad=args.skip_bad, where=args.where,
                         labels=tuple(args.labels))
    with stop_on_sigterm("export"):  # a file being written is removed on the way out
        res = export_store(args.store, args.output, args.format, opts)
    what = (f"{res['written']} file(s)" if args.format in ("wav", "flac") else
            f"{res['items']} item(s) as {args.format} ({', '.join(res['files'][:3])}"
            + (" ..." if len(res["files"]) > 3 else "") + ")")
    print(f"wrote {what} to {args.output}"
          + (f"; kept {res['kept']} existing with the same audio (use --overwrite to replace)"
             if res["kept"] else "")
          + (f"; removed {res['removed']} of an earlier export no longer in it"
             if res.get("removed") else "")
          + (f"; {res['not_done']} pair(s) not done (see hpc-nst status)"
             if res["not_done"] else "")
          + (f"; {res['left_out_by_where']} pair(s) left out by --where"
             if res["left_out_by_where"] else "")
          + (f"; {res['left_out_bad']} pair(s) left out by --skip-bad (their audio fails "
             f"its checksum: {_ids(res['left_out_bad_ids'])}; see hpc-nst verify)"
             if res.get("left_out_bad") else ""))
    return 0


def _ids(ids: list[str], shown: int = 10) -> str:
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return ", ".join(ids[:shown]) + more
