"""``hpc-nst report STORE [STORE ...] -o DIR``: comparison tables and an offline HTML report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _groups(text: str) -> tuple[str, ...]:
    """``--metrics``, checked after parsing (not as argparse's ``type``: the registered
    groups come from plugins, whose own errors argparse would hide behind "invalid value")."""
    from hpc_nst.cli import UserError
    from hpc_nst.report.evaluate import all_groups

    known = all_groups()  # the built-in groups and the registered ones
    if text == "all":
        return known
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in known]
    if not items:
        raise UserError(f"--metrics {text!r}: no metric group given; choose from "
                        f"{', '.join(known)} or 'all'")
    if bad:
        raise UserError(f"--metrics {text!r}: unknown metric group(s) {bad}; choose from "
                        f"{', '.join(known)} or 'all'")
    return items


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="evaluate batch stores: metric tables and an HTML report",
        description="Read one or more stores written by hpc-nst run (e.g. one per method over "
        "the same manifest) pair by pair and write DIR/pairs.{csv,parquet,md} (one row per "
        "store and pair, every metric), DIR/summary_by_{job,style,content}.{csv,parquet,md} "
        "(mean and std per group), DIR/summary.md, DIR/failures.csv and DIR/index.html (works "
        "offline from DIR). Metric definitions: docs/metrics.md.")
    p.add_argument("stores", nargs="+", type=Path, metavar="STORE", help="Zarr stores")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="report folder (created; files in it are replaced)")
    p.add_argument("--metrics", default="all", metavar="GROUPS",
                   help="comma-separated metric groups: run, spectral, style, judge, target, "
                   "pitch, level, and any a plugin registers (default: all)")
    p.add_argument("--classifier", type=Path, metavar="CKPT",
                   help="instrument classifier for the style metrics (default: the shipped one)")
    p.add_argument("--judge", type=Path, metavar="NPZ",
                   help="EQ-proof style judge (default: the shipped one; train one with "
                   "hpc-nst train-judge)")
    p.add_argument("--labels", type=Path, action="append", default=[], metavar="CSV",
                   help="CSV with pair_id,content_label,style_label (repeatable; default: "
                   "label columns of the manifest, or labels.csv beside it)")
    p.add_argument("--inputs-dir", type=Path, metavar="DIR",
                   help="resolve the manifest's relative input paths against DIR instead of "
                   "the manifest's folder recorded in the store")
    p.add_argument("--details", type=int, default=100, metavar="N",
                   help="pairs shown with figures and audio, each with every store where it "
                   "is done (default 100)")
    p.add_argument("--failures", type=int, default=200, metavar="N",
                   help="failed pairs per store listed in the HTML page (default 200)")
    p.add_argument("--title", default="hpc-nst evaluation report", help="page title")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--skip-bad", action="store_true",
                   help="report pairs whose audio fails its checksum as failed (default: "
                        "refuse; see hpc-nst verify)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hpc_nst.batch.labels import check_label_files
    from hpc_nst.cli import UserError
    from hpc_nst.cli.args import stop_on_sigterm
    from hpc_nst.fsutil import DISK_ERRNOS
    from hpc_nst.report.build import ReportOptions, build_report, stderr_progress

    groups = _groups(args.metrics)
    if args.details < 0 or args.failures < 0:
        raise UserError("--details and --failures must be >= 0")
    for s in args.stores:
        if not s.exists():
            raise UserError(f"{s}: store not found")
    seen: set[Path] = set()
    for s in args.stores:
        if s.resolve() in seen:
            raise UserError(f"{s}: given twice (each store is one job of the report)")
        seen.add(s.resolve())
    check_label_files(args.labels)
    if args.inputs_dir is not None and not args.inputs_dir.is_dir():
        raise UserError(f"--inputs-dir {args.inputs_dir}: "
                        + ("not a folder" if args.inputs_dir.exists() else "no such folder"))
    for flag, path in (("--judge", args.judge), ("--classifier", args.classifier)):
        if path is not None and not path.is_file():  # given: not silently left out
            raise UserError(f"{flag} {path}: no such file (leave {flag} out for the shipped "
                            "one)")
    if args.output.exists() and not args.output.is_dir():
        raise UserError(f"-o {args.output}: exists and is not a folder; give a folder for the "
                        "report")
    opts = ReportOptions(
        skip_bad=args.skip_bad,
        groups=groups, classifier=args.classifier, judge=args.judge, details=args.details,
        failures=args.failures, labels=args.labels, inputs_dir=args.inputs_dir,
        title=args.title, progress=None if args.quiet else stderr_progress)
    with stop_on_sigterm("report"):  # its temporary folder removed on the way out
        try:
            result = build_report(args.stores, args.output, opts)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                raise
            raise UserError(f"{args.output}: cannot write the report ({os.strerror(exc.errno)}); "
                            "free space (or make the filesystem writable) and rerun: the "
                            "tables of an earlier report there are kept") from None
    for note in result.notes:
        print(f"note: {note}")
    done = sum(s.done for s in result.stores)
    failed = sum(s.failed for s in result.stores)
    print(f"{result.rows} rows from {len(result.stores)} store(s) ({done} done, {failed} failed) "
          f"in {result.seconds:.1f} s -> {result.index}")
    text = (args.output / "summary.md").read_text()
    headline = text.split("## Headline (by job)\n", 1)[-1].split("\n## ", 1)[0]
    print(f"\nHeadline (by job; every grouping in {args.output / 'summary.md'}):\n"
          + headline.rstrip() + "\n")
    return 0
