"""Markdown table of the dev-split ablation (benchmarks/experiments/ablation_out/*.csv).

    python benchmarks/experiments/ablation_table.py [LABEL ...]

Means over the 8 dev pairs of each row's per-pair CSV (written by quality_dev.py --csv), in the
order given (default: every CSV), with the goals of issue 12 checked against content-copy:
LSD <= 0.83x, timbre_dynamics <= 0.8x, lsd_dynamics <= 1x, pitch <= +0.05, judge/style >= 0.5.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent / "ablation_out"
COLS = ["lsd_db", "timbre_mfcc", "timbre_dynamics_db", "lsd_dynamics_db", "pitch_jaccard",
        "style_top1", "judge_top1", "seconds"]


def main() -> None:
    labels = sys.argv[1:] or sorted(p.stem for p in OUT.glob("*.csv"))
    means = {lab: pd.read_csv(OUT / f"{lab}.csv")[COLS].mean() for lab in labels}
    cc = pd.read_csv(OUT / "content-copy.csv")[COLS].mean()
    goals = {"lsd_db": lambda v: v <= 0.83 * cc.lsd_db,
             "timbre_dynamics_db": lambda v: v <= 0.8 * cc.timbre_dynamics_db,
             "lsd_dynamics_db": lambda v: v <= cc.lsd_dynamics_db,
             "pitch_jaccard": lambda v: v <= cc.pitch_jaccard + 0.05,
             "judge_top1": lambda v: v >= 0.5, "style_top1": lambda v: v >= 0.5}
    print("| row | " + " | ".join(COLS) + " | goals met |")
    print("|---|" + "---|" * (len(COLS) + 1))
    for lab, m in means.items():
        cells = []
        for c in COLS:
            v = m[c]
            txt = f"{v:.3f}" if c in ("timbre_mfcc", "pitch_jaccard", "style_top1",
                                       "judge_top1") else f"{v:.2f}"
            if c in goals and goals[c](v):
                txt = f"**{txt}**"
            cells.append(txt)
        met = sum(bool(g(m[c])) for c, g in goals.items())
        print(f"| {lab} | " + " | ".join(cells) + f" | {met}/6 |")


if __name__ == "__main__":
    main()
