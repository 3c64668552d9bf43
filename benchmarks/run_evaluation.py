"""The full evaluation: every method preset of jobs/ over the triplet benchmark and the demo pairs.

    python benchmarks/run_evaluation.py [--out out/evaluation] [--jobs paper eq ...]
        [--set KEY=VALUE ...] [--run-args "--cluster slurm --workers 8"] [--report-only]

For each manifest (``manifests/triplets/manifest.csv``: 32 triplets with targets;
``manifests/demo.csv``: the paper's two experiments) and each job preset
(``paper`` = the paper's method, ``classifier-features`` (the trained classifier's features),
``content-copy``, ``style-copy``, ``eq``, ``ulyanov``), it runs ``hpc-nst run`` into
``OUT/<manifest>/<job>.zarr`` (rerunning resumes), then ``hpc-nst report`` over that manifest's
stores into ``OUT/<manifest>/report/``, and prints Markdown: the triplet benchmark's headline
table by job, the demo pairs' bandwidth and centroid ratios per job, and how the paper's method
compares with the bar of issue 5. L-BFGS jobs (ulyanov) run with batch size 1, so each pair's
line search is its own. ``--set`` applies to every job (e.g. ``--set iterations=3`` for a smoke
test).
"""

from __future__ import annotations

import argparse
import math
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
JOBS = ("paper", "classifier-features", "content-copy", "style-copy", "eq", "ulyanov",
        "envelope-eq", "notes", "harmonic", "sampler", "layered")
MANIFESTS = {"triplets": ROOT / "manifests" / "triplets" / "manifest.csv",
             "demo": ROOT / "manifests" / "demo.csv"}
TRIPLET_METRICS = ("lsd_db", "timbre_mfcc", "timbre_dynamics_db", "lsd_dynamics_db",
                   "pitch_jaccard", "style_top1", "judge_top1", "style_prob", "bandwidth_ratio",
                   "runtime_s")
DEMO_METRICS = ("bandwidth_ratio", "centroid_ratio", "style_prob", "loss_total")
TUNING_PAIRS = tuple(f"s256-{i:03d}" for i in range(8))
"""The triplets the preset's weights were tuned on (docs/engine.md, "One parameter set")."""


def _hpc_nst(*args: str) -> int:
    cmd = [sys.executable, "-m", "hpc_nst", *args]
    print("$ hpc-nst " + shlex.join(args), file=sys.stderr, flush=True)
    return subprocess.run(cmd, cwd=ROOT, stdout=sys.stderr).returncode  # stdout: Markdown only


def run_all(out: Path, jobs: list[str], sets: list[str], run_args: list[str],
            report_only: bool) -> dict[str, Path]:
    """Run every (manifest, job) and build one report per manifest; returns the report dirs."""
    reports = {}
    for name, manifest in MANIFESTS.items():
        stores = []
        for job in jobs:
            store = out / name / f"{job}.zarr"
            stores.append(store)
            if report_only:
                continue
            toml = ROOT / "jobs" / f"{job}.toml"
            batch = ["--batch-size", "1"] if job == "ulyanov" else []
            rc = _hpc_nst("run", str(manifest), "-o", str(store), "--job", str(toml),
                          *[x for s in sets for x in ("--set", s)], *batch, *run_args)
            if rc not in (0, 1):  # 1: some pairs failed; they are listed in the report
                raise SystemExit(f"hpc-nst run failed for {name}/{job} (exit {rc})")
        present = [str(s) for s in stores if s.exists()]
        reports[name] = out / name / "report"
        rc = _hpc_nst("report", *present, "-o", str(reports[name]), "--quiet",
                      "--title", f"hpc-nst evaluation: {name}")
        if rc != 0:
            raise SystemExit(f"hpc-nst report failed for {name} (exit {rc})")
    return reports


def _cell(mean: float, std: float) -> str:
    if math.isnan(mean):
        return ""
    return f"{mean:.3g}" + ("" if math.isnan(std) else f" ± {std:.2g}")


def triplet_table(report: Path, jobs: list[str]) -> tuple[str, pd.DataFrame]:
    """Markdown of the headline metrics by job (mean ± std over done pairs)."""
    df = pd.read_csv(report / "summary_by_job.csv").set_index("job")
    metrics = [m for m in TRIPLET_METRICS if f"{m}_mean" in df.columns]
    lines = ["| job | method | done/pairs | " + " | ".join(metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for job in [j for j in jobs if j in df.index]:
        r = df.loc[job]
        cells = [_cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics]
        lines.append(f"| {job} | {r['method']} | {int(r['done'])}/{int(r['pairs'])} | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", df


def heldout_table(report: Path, jobs: list[str]) -> tuple[str, pd.DataFrame]:
    """Markdown of the headline metrics by job over the triplets not used for tuning."""
    df = pd.read_csv(report / "pairs.csv", keep_default_na=False, na_values=[""])
    df = df[(df.status == "done") & ~df.pair_id.isin(TUNING_PAIRS)]
    metrics = [m for m in TRIPLET_METRICS if m in df.columns and df[m].notna().any()]
    grouped = df.groupby("job")[metrics]
    summary = grouped.mean().add_suffix("_mean").join(grouped.std().add_suffix("_std"))
    summary["done"] = df.groupby("job").size()
    lines = ["| job | done | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for job in [j for j in jobs if j in summary.index]:
        r = summary.loc[job]
        cells = [_cell(r[f"{m}_mean"], r[f"{m}_std"]) for m in metrics]
        lines.append(f"| {job} | {int(r['done'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", summary


def paired_verdict(report: Path, exclude: tuple[str, ...] = ()) -> str:
    """The bar of issue 5 on the pairs both jobs finished (for baselines that ran on a subset)."""
    df = pd.read_csv(report / "pairs.csv", keep_default_na=False, na_values=[""])
    df = df[(df.status == "done") & ~df.pair_id.isin(exclude)]
    paper = df[df.job == "paper"].set_index("pair_id")
    out = []
    for other in ("content-copy", "ulyanov"):
        theirs = df[df.job == other].set_index("pair_id")
        both = paper.index.intersection(theirs.index)
        if both.empty:
            continue
        metrics = ("lsd_db", "timbre_mfcc", "timbre_dynamics_db")
        for metric in (*metrics, "pitch_jaccard") if other == "content-copy" else metrics:
            a, b = paper.loc[both, metric].mean(), theirs.loc[both, metric].mean()
            if metric == "pitch_jaccard":
                ok = "within 0.05" if a - b <= 0.05 else "NOT within 0.05"
                out.append(f"- {metric} on {len(both)} pairs: paper {a:.3g} vs {other} {b:.3g} "
                           f"-> {ok} ({a - b:+.3g})")
            else:
                out.append(f"- {metric} on {len(both)} pairs: paper {a:.3g} vs {other} {b:.3g} "
                           f"-> {'better' if a < b else 'NOT better'} by {b - a:+.3g}")
    return "\n".join(out) + "\n"


def demo_table(report: Path, jobs: list[str]) -> tuple[str, pd.DataFrame]:
    """Markdown of the demo pairs' ratios per job."""
    df = pd.read_csv(report / "pairs.csv", keep_default_na=False, na_values=[""])
    df = df[df.status == "done"]
    metrics = [m for m in DEMO_METRICS if m in df.columns and df[m].notna().any()]
    lines = ["| pair | job | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for pair in sorted(df.pair_id.unique()):
        for job in jobs:
            row = df[(df.pair_id == pair) & (df.job == job)]
            if row.empty:
                continue
            cells = ["" if pd.isna(v) else f"{v:.3g}" for v in row.iloc[0][metrics]]
            lines.append(f"| {pair} | {job} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", df


def verdict(summary: pd.DataFrame, demo: pd.DataFrame) -> str:
    """The bar of issue 5, checked line by line with the margins."""
    out = []
    m = summary["lsd_db_mean"] if "lsd_db_mean" in summary else None
    if m is not None and "paper" in summary.index:
        p = summary.loc["paper"]
        for metric in ("lsd_db", "timbre_mfcc", "timbre_dynamics_db"):
            for other in ("content-copy", "ulyanov"):
                if other in summary.index and f"{metric}_mean" in summary:
                    a, b = p[f"{metric}_mean"], summary.loc[other, f"{metric}_mean"]
                    out.append(f"- {metric}: paper {a:.3g} vs {other} {b:.3g} -> "
                               f"{'better' if a < b else 'NOT better'} by {b - a:+.3g}")
        if "content-copy" in summary.index and "pitch_jaccard_mean" in summary:
            a = p["pitch_jaccard_mean"]
            b = summary.loc["content-copy", "pitch_jaccard_mean"]
            out.append(f"- pitch_jaccard: paper {a:.3g} vs content-copy {b:.3g} -> "
                       f"{'within' if a - b <= 0.05 else 'NOT within'} 0.05 ({a - b:+.3g})")
    for pair, want in (("harp_fork", "< 1"), ("voice_violin", "> 1")):
        row = demo[(demo.pair_id == pair) & (demo.job == "paper")]
        if not row.empty and "bandwidth_ratio" in row:
            r = float(row.iloc[0]["bandwidth_ratio"])
            ok = r < 1 if want == "< 1" else r > 1
            out.append(f"- {pair}: paper bandwidth ratio {r:.3g} (want {want}) -> "
                       f"{'yes' if ok else 'NO'}")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "evaluation")
    ap.add_argument("--jobs", nargs="+", default=list(JOBS), choices=JOBS)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--run-args", default="", help="extra hpc-nst run options, one string")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the reports")
    ap.add_argument("--triplets", type=Path, metavar="DIR",
                    help="another triplet set (e.g. rendered from a second SoundFont with "
                    "`hpc-nst dataset triplets --soundfont`); default manifests/triplets")
    args = ap.parse_args()
    if args.triplets is not None:
        MANIFESTS["triplets"] = args.triplets / "manifest.csv"
    reports = run_all(args.out, args.jobs, args.sets, shlex.split(args.run_args),
                      args.report_only)
    text, summary = triplet_table(reports["triplets"], args.jobs)
    print("## Triplet benchmark (32 triplets; distances to the target, lower is better)\n")
    print(text)
    dtext, demo = demo_table(reports["demo"], args.jobs)
    print("## The paper's two experiments (output/content ratios)\n")
    print(dtext)
    print("## Against the bar of issue 5\n")
    print(verdict(summary, demo))
    print("## The same, pair for pair (on the pairs both jobs finished)\n")
    print(paired_verdict(reports["triplets"]))
    htext, _ = heldout_table(reports["triplets"], args.jobs)
    print(f"## The triplets not used for tuning ({', '.join(TUNING_PAIRS)} excluded)\n")
    print(htext)
    print(paired_verdict(reports["triplets"], TUNING_PAIRS))
    print(f"Reports: {', '.join(str(r / 'index.html') for r in reports.values())}")


if __name__ == "__main__":
    main()
