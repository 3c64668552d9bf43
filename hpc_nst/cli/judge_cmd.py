"""``hpc-nst train-judge -o JUDGE.npz``: train the EQ-proof style judge on SoundFont renders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hpc_nst.cli.run_cmd import count_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-judge", help="train the EQ-proof style judge (report's judge_top1)",
        description="Render random melodies of every triplet program from one or more GM "
        "SoundFonts, describe each window by band-normalised log-mel dynamics (which a static "
        "EQ cannot change) and fit a logistic regression; the last render of each program is "
        "held out to choose the L2 strength. See hpc_nst/metrics/judge.py.")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="NPZ",
                   help="judge file to write (hpc-nst report --judge NPZ)")
    p.add_argument("--renders", type=int, default=3,
                   help="24 s renders per program (the last held out; default 3)")
    p.add_argument("--seed", type=count_arg(0), default=0, help="melody seed (default 0)")
    p.add_argument("--soundfont", type=Path, action="append", dest="soundfonts",
                   metavar="SF2", help="GM .sf2/.sf3 to render from; repeat it to train on "
                   "several sample sets (default: FluidR3_GM alone)")
    p.add_argument("--gl-fraction", type=float, default=0.5,
                   help="share of windows resynthesised by Griffin-Lim (default 0.5)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing -o file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from hpc_nst.errors import UsageError
    from hpc_nst.fsutil import check_output_file, unwritable_reason
    from hpc_nst.metrics.judge_train import train_judge

    if args.renders < 2 or not 0.0 <= args.gl_fraction <= 1.0:
        raise UsageError("--renders must be >= 2 and --gl-fraction within [0, 1]")
    # -o before minutes of rendering: a folder, a file in the way, a place not writable
    check_output_file(args.output, "-o", "a judge file", "judge.npz")
    if args.output.exists() and not args.overwrite:
        raise UsageError(f"-o {args.output}: exists; add --overwrite to replace it, or choose "
                         "another name")
    why = unwritable_reason(args.output.parent)
    if why:
        raise UsageError(f"-o {args.output}: cannot be written there ({why})")
    judge, metrics = train_judge(renders=args.renders, seed=args.seed, soundfonts=args.soundfonts,
                                 gl_fraction=args.gl_fraction,
                                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    judge.save(args.output)
    print(json.dumps({"output": str(args.output), **metrics}))
    return 0
