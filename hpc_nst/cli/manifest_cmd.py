"""``hpc-nst manifest``: a manifest of content/style pairs from folders or glob patterns."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from hpc_nst.cli.run_cmd import count_arg
from hpc_nst.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "manifest", help="build a manifest of pairs from folders of content and style audio",
        description="Pair every content file with style files (cross, zip or a balanced "
                    "sample) and write the CSV that `hpc-nst run` reads. Paths are written "
                    "relative to the manifest's folder; pair ids are stable.")
    p.add_argument("--content", action="append", required=True, metavar="DIR|GLOB",
                   help="folder, file or glob pattern of content audio (repeatable)")
    p.add_argument("--style", action="append", required=True, metavar="DIR|GLOB",
                   help="folder, file or glob pattern of style audio (repeatable)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="CSV")
    p.add_argument("--mode", choices=("cross", "zip", "sample"), default="cross",
                   help="cross: every content x every style (default); zip: i-th with i-th; "
                        "sample: --pairs N drawn at random, balanced over styles")
    p.add_argument("--pairs", type=int, default=0, metavar="N", help="pairs for --mode sample")
    p.add_argument("--seed", type=count_arg(0), default=0, help="seed of --mode sample (default 0)")
    p.add_argument("-r", "--recursive", action="store_true",
                   help="search sub-folders of DIR too (glob patterns: '**' matches them)")
    p.add_argument("--ext", default=",".join(e[1:] for e in _exts()), metavar="LIST",
                   help="audio extensions to take, comma-separated (default: %(default)s)")
    p.add_argument("--labels-from-dirs", action="store_true",
                   help="content_label/style_label columns from each file's first sub-folder "
                        "under its --content/--style folder")
    p.add_argument("--labels", action="append", type=Path, default=[], metavar="CSV",
                   help="side CSV with a 'path' column (relative to that CSV) and label "
                        "columns; they become content_<col> / style_<col> (repeatable)")
    p.add_argument("--override", action="append", default=[],
                   metavar="KEY=VALUE", help="a per-row job key (seed, style_weight, "
                                             "iterations, ...) on every row (repeatable)")
    p.add_argument("--column", action="append", default=[],
                   metavar="NAME=VALUE", help="a constant metadata column (repeatable)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing CSV")
    p.set_defaults(func=run)


def _exts() -> tuple[str, ...]:
    from hpc_nst.batch.manifest_build import AUDIO_EXTENSIONS

    return AUDIO_EXTENSIONS


def run(args: argparse.Namespace) -> int:
    from hpc_nst.batch.manifest_build import (
        BuildOptions,
        build_rows,
        find_audio,
        unique_files,
        write_manifest,
    )
    from hpc_nst.config import parse_overrides

    if args.mode == "sample" and args.pairs <= 0:
        raise UsageError("--mode sample needs --pairs N (N > 0)")
    if args.mode != "sample" and args.pairs:
        raise UsageError(f"--pairs is for --mode sample, not --mode {args.mode}")
    exts = tuple(e.strip() for e in args.ext.split(",") if e.strip())
    contents = unique_files([f for spec in args.content
                             for f in find_audio(spec, args.recursive, exts)], "--content")
    styles = unique_files([f for spec in args.style
                           for f in find_audio(spec, args.recursive, exts)], "--style")
    opts = BuildOptions(mode=args.mode, n=args.pairs, seed=args.seed,
                        labels_from_dirs=args.labels_from_dirs,
                        overrides=tuple(parse_overrides(args.override).items()),
                        side_labels=tuple(args.labels),
                        extra_columns=tuple(parse_overrides(args.column).items()))
    header, rows = build_rows(contents, styles, args.output.parent, opts)
    write_manifest(args.output, header, rows, args.overwrite)
    per_style = Counter(r.get("style_label") or r["style"] for r in rows)
    print(f"wrote {args.output}: {len(rows)} pairs ({args.mode}) of {len(contents)} content x "
          f"{len(styles)} style files; {len(per_style)} styles, {min(per_style.values())}-"
          f"{max(per_style.values())} pairs each; columns: {', '.join(header)}")
    return 0
