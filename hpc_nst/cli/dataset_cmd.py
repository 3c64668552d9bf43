"""``hpc-nst dataset render-gm OUT_DIR``: render the labelled GM instrument dataset."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hpc_nst.cli.args import stop_on_sigterm
from hpc_nst.cli.run_cmd import count_arg


def _programs(text: str) -> list[int]:
    """Parse ``0-39,40,52`` style program lists."""
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad program list item {part!r}") from None
        if not (0 <= first <= 127 and 0 <= last <= 127):
            raise argparse.ArgumentTypeError(f"programs must be in 0..127: {part!r}")
        if first > last:
            raise argparse.ArgumentTypeError(
                f"program range {part!r} runs backwards; write it low to high: '{last}-{first}'")
        out.extend(range(first, last + 1))
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="make training datasets")
    dsub = p.add_subparsers(dest="dataset_command", required=True, metavar="DATASET_COMMAND")
    r = dsub.add_parser(
        "render-gm",
        help="render a labelled instrument dataset from a General MIDI SoundFont",
        description="Render 2.56 s clips (16 kHz FLAC) of GM programs with a held-out-pitch "
        "split and write OUT_DIR/manifest.csv (path,label,program,pitch,velocity,split).",
    )
    r.add_argument("out_dir", type=Path, help="output folder")
    r.add_argument("--soundfont", type=Path, help="a .sf2 file (default: FluidR3_GM.sf2)")
    r.add_argument(
        "--programs", nargs="+", type=_programs, metavar="LIST",
        help="GM programs, e.g. '0-111' or '0 40 73' (default: 0-111)",
    )
    r.add_argument("--per-class", type=int, default=100, help="clips per program (default 100)")
    r.add_argument("--seed", type=count_arg(0), default=0,
                   help="seed of the plan and split (default 0)")
    r.add_argument("--quiet", action="store_true", help="no progress output")
    r.add_argument("--overwrite", action="store_true",
                   help="replace a dataset rendered into OUT_DIR before (its clips the new "
                        "render does not write again are removed)")
    r.set_defaults(func=run_render)
    add_triplets_parser(dsub)


def run_render(args: argparse.Namespace) -> int:
    from hpc_nst.cli import UserError
    from hpc_nst.data.gm_dataset import DEFAULT_PROGRAMS, render_gm_dataset

    programs = [p for group in args.programs for p in group] if args.programs else None
    if args.per_class < 1:
        raise UserError(f"--per-class must be >= 1, got {args.per_class}")
    if args.per_class < 3:
        print(f"hpc-nst dataset render-gm: warning: --per-class {args.per_class} puts every "
              "clip in the train split (val and test need 3 or more per class): hpc-nst train "
              "will refuse it for want of held-out clips", file=sys.stderr)
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"{time.perf_counter() - t0:7.1f}s {msg}", file=sys.stderr, flush=True)

    try:
        with stop_on_sigterm("dataset render-gm"):  # scancel, timeout: cleaned up as Ctrl-C
            manifest = render_gm_dataset(
                args.out_dir, programs or DEFAULT_PROGRAMS, args.per_class, args.seed,
                args.soundfont, None if args.quiet else progress, overwrite=args.overwrite,
            )
    except (ValueError, ImportError) as exc:
        raise UserError(str(exc)) from None
    print(manifest)
    return 0


def add_triplets_parser(dsub: argparse._SubParsersAction) -> None:
    """The ``hpc-nst dataset triplets`` subcommand (registered by ``hpc_nst.cli.dataset_cmd``)."""
    t = dsub.add_parser(
        "triplets",
        help="render content/style/target triplets (a timbre-transfer ground truth)",
        description="Render Cífka-style triplets from a GM SoundFont: content melody on "
        "instrument A, style melody on B, target = content melody on B (16 kHz FLAC), and write "
        "OUT_DIR/manifest.csv (pair_id,content,style,target) and OUT_DIR/labels.csv "
        "(pair_id,content_label,style_label,...). Deterministic for a seed.",
    )
    t.add_argument("out_dir", type=Path, help="output folder")
    t.add_argument("--count", type=int, nargs="+", default=[24], metavar="N",
                   help="triplets per length (one per --seconds value; default 24)")
    t.add_argument("--seconds", type=float, nargs="+", default=[2.56], metavar="S",
                   help="clip length(s) in seconds (default 2.56); e.g. --count 24 8 "
                   "--seconds 2.56 8")
    t.add_argument("--seed", type=count_arg(0), default=0, help="seed (default 0)")
    t.add_argument("--soundfont", type=Path, help="a .sf2 file (default: FluidR3_GM.sf2)")
    t.add_argument("--quiet", action="store_true", help="no progress output")
    t.add_argument("--overwrite", action="store_true",
                   help="render into a folder that already holds triplets (its manifest and "
                   "labels are replaced, the earlier audio removed)")
    t.set_defaults(func=run_triplets)


def run_triplets(args: argparse.Namespace) -> int:
    """Entry point of ``hpc-nst dataset triplets``."""
    from hpc_nst.data.triplets import render_triplets
    from hpc_nst.errors import UsageError

    counts = list(args.count)
    if len(counts) == 1 and len(args.seconds) > 1:
        counts = counts * len(args.seconds)
    try:
        manifest = render_triplets(
            args.out_dir, counts, args.seconds, args.seed, args.soundfont,
            None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True)),
            overwrite=args.overwrite)
    except (ValueError, ImportError) as exc:
        raise UsageError(str(exc)) from None
    print(manifest)
    return 0
