"""In-process quality check of one job on triplets (no store): every target metric per pair.

    python benchmarks/quality_dev.py [--triplets DIR] [--split dev|test|all] [--job TOML]
        [--set KEY=VALUE ...] [--label NAME] [--csv OUT.csv] [--oracle-style] [--judge NPZ ...]

For fast iteration on the dev split only (``dev`` = s256-000..s256-007, the pairs the presets
are tuned on; ``test`` = every other triplet). The figures quoted in the README come from
``benchmarks/run_evaluation.py`` (through ``hpc-nst run`` and ``hpc-nst report``); this script
computes the same metrics with the same code (``hpc_nst.metrics``) and prints their means.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from run_evaluation import TUNING_PAIRS  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
DEV = TUNING_PAIRS  # the pairs the presets were tuned on


def main() -> None:
    from hpc_nst.audio.io import load_audio
    from hpc_nst.config import load_job, parse_overrides
    from hpc_nst.engine.methods import run_method
    from hpc_nst.metrics import pitch, reference
    from hpc_nst.metrics.judge import load_judge
    from hpc_nst.metrics.style_class import load_classifier

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--triplets", type=Path, default=ROOT / "manifests" / "triplets")
    ap.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    ap.add_argument("--job", type=Path, default=ROOT / "jobs" / "paper.toml")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--label", default="")
    ap.add_argument("--csv", type=Path)
    ap.add_argument("--judge", type=Path, action="append", default=[], metavar="NPZ",
                    help="a further EQ-proof judge (a column judge_top1_<file stem>); repeatable")
    ap.add_argument("--oracle-style", action="store_true",
                    help="use the target as the style: an upper bound of what a method can "
                    "take from the style (diagnosis only, never a reported result)")
    args = ap.parse_args()
    cfg = load_job(args.job, parse_overrides(args.sets))
    manifest = pd.read_csv(args.triplets / "manifest.csv")
    labels = pd.read_csv(args.triplets / "labels.csv").set_index("pair_id")
    if args.split == "dev":
        manifest = manifest[manifest.pair_id.isin(DEV)]
    elif args.split == "test":
        manifest = manifest[~manifest.pair_id.isin(DEV)]
    clf = load_classifier()
    judges = {"judge_top1": load_judge(), **{f"judge_top1_{p.stem}": load_judge(p)
                                             for p in args.judge}}
    if len(judges) < len(args.judge) + 1:
        ap.error("--judge files need distinct file names (each names a column)")
    rows = []
    for _, r in manifest.iterrows():
        c, s, t = (load_audio(args.triplets / r[k], 16000) for k in ("content", "style", "target"))
        started = time.perf_counter()
        out = run_method([c], [t if args.oracle_style else s], cfg,
                         seeds=[cfg.optim.seed])[0].audio
        secs = time.perf_counter() - started
        lab = labels.loc[r.pair_id]
        row = {"pair_id": r.pair_id, "seconds": secs,
               **reference.compare(reference.features(out, 16000, len(t)),
                                   reference.features(t, 16000))}
        row["pitch_jaccard"] = pitch.jaccard_distance(
            pitch.pitch_sets(reference.pad_or_truncate(out, len(t)), 16000),
            pitch.pitch_sets(t, 16000))
        for column, judge in judges.items():
            row[column] = float(np.argmax(judge.probabilities(out)) == judge.index(lab.style_label))
        pc = clf.probabilities(out)
        row["style_top1"] = float(np.argmax(pc) == clf.index(lab.style_label))
        rows.append(row)
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    means = df.drop(columns="pair_id").mean()
    name = args.label or f"{cfg.method} {' '.join(args.sets)}" + (
        " [oracle style = target]" if args.oracle_style else "")
    print(f"{name} [{args.split}, {len(df)} pairs] " + " ".join(
        f"{k}={v:.3f}" for k, v in means.items()), flush=True)


if __name__ == "__main__":
    main()
