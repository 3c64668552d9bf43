"""In-process quality check of one job on triplets (no store): every target metric per pair.

    python benchmarks/quality_dev.py [--triplets DIR ...] [--split dev|test|all] [--job TOML]
        [--set KEY=VALUE ...] [--label NAME] [--csv OUT.csv] [--oracle-style] [--judge NPZ ...]
        [--outputs DIR]
    python benchmarks/quality_dev.py --dev-suite CACHE_DIR [--job TOML] ...

For fast iteration on the dev split only (``dev`` = s256-000..s256-007 of
``manifests/triplets``, the pairs the presets are tuned on; ``test`` = its other triplets). The
split names pairs of that benchmark only: every other folder (the TimGM6mb set, a generated
one, whose pair ids repeat the same names) is evaluated whole, ``--split all``, and any other
split there is refused rather than silently scoring held-out pairs as dev ones. The figures
quoted in the README come from ``benchmarks/run_evaluation.py`` (through ``hpc-nst run`` and
``hpc-nst report``); this script computes the same metrics with the same code
(``hpc_nst.metrics``) and prints their means.

``--dev-suite CACHE_DIR``: the 104 dev pairs the README's "Quality" choices are made on, the
dev split of ``manifests/triplets`` and three sets of the same generator with seeds of their
own (rendered into CACHE_DIR on first use, about a minute): ``dev2`` (24 pairs, seed 7),
``dev3`` (48, seed 11), ``dev8`` (24 pairs of 8 s, seed 17); one line per set, then the whole
suite with the verdicts as counts. Never the held-out sets.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from run_evaluation import TUNING_PAIRS  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
DEV = TUNING_PAIRS  # the pairs the presets were tuned on
#: (name, count, seconds, seed) of the generated dev sets in the suite
DEV_SETS = (("dev2", 24, 2.56, 7), ("dev3", 48, 2.56, 11), ("dev8", 24, 8.0, 17))
TUNED = ROOT / "manifests" / "triplets"  # the only folder with a dev / test split
SUITE_RECORD = "dev_suite.json"  # (count, seconds, seed) a cached dev set was rendered with
VERDICTS = ("judge_top1", "style_top1")  # columns printed as counts for the suite


def dev_suite(cache: Path) -> list[tuple[str, Path, str]]:
    """(name, triplet folder, split) of every set in the dev suite, rendering the missing."""
    from hpc_nst.data.triplets import render_triplets

    sets = [("dev", TUNED, "dev")]
    for name, count, seconds, seed in DEV_SETS:
        folder = cache / name
        wanted = {"count": count, "seconds": seconds, "seed": seed}
        if not (folder / "manifest.csv").is_file():
            render_triplets(folder, [count], [seconds], seed)
            (folder / SUITE_RECORD).write_text(json.dumps(wanted))
        elif (folder / SUITE_RECORD).is_file():
            have = json.loads((folder / SUITE_RECORD).read_text())
            if have != wanted:
                raise SystemExit(f"{folder}: rendered with {have}, the suite's {name} is "
                                 f"{wanted}; delete the folder to render it again")
        else:  # cached before the record existed: its size and length must match
            labels = pd.read_csv(folder / "labels.csv")
            if len(labels) != count or not np.allclose(labels["seconds"], seconds):
                raise SystemExit(f"{folder}: {len(labels)} pairs, not the suite's {name} "
                                 f"({count} x {seconds} s); delete the folder to render it")
        sets.append((name, folder, "all"))
    return sets


def split_pairs(folder: Path, manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``manifest`` (of the triplet ``folder``) in ``split``; a dev or test split
    of any folder but ``manifests/triplets`` is refused, and so is an empty selection."""
    if split != "all":
        if folder.resolve() != TUNED.resolve():
            raise SystemExit(f"--split {split}: only manifests/triplets has a dev / test split "
                             f"(the pairs the presets were tuned on); {folder} is another set, "
                             "its pair ids name no split: use --split all")
        keep = manifest.pair_id.isin(DEV)
        manifest = manifest[keep if split == "dev" else ~keep]
    if manifest.empty:
        raise SystemExit(f"{folder}: no pair in split {split!r}")
    return manifest


def evaluate(name: str, folder: Path, manifest: pd.DataFrame, cfg, args, judges: dict,
             clf) -> pd.DataFrame:
    """Every metric of the job's output for the pairs ``manifest`` (rows of :func:`split_pairs`)
    of ``folder`` (the set ``name``)."""
    from hpc_nst.audio.io import load_audio, write_audio
    from hpc_nst.engine.methods import run_method
    from hpc_nst.metrics import pitch, reference

    labels = pd.read_csv(folder / "labels.csv").set_index("pair_id")
    if args.outputs:
        (args.outputs / name).mkdir(parents=True, exist_ok=True)
    rows = []
    for _, r in manifest.iterrows():
        c, s, t = (load_audio(folder / r[k], 16000) for k in ("content", "style", "target"))
        started = time.perf_counter()
        out = run_method([c], [t if args.oracle_style else s], cfg,
                         seeds=[cfg.optim.seed])[0].audio
        secs = time.perf_counter() - started
        if args.outputs:
            write_audio(args.outputs / name / f"{r.pair_id}.flac", out, 16000)
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
    return pd.DataFrame(rows)


def main() -> None:
    from hpc_nst.config import load_job, parse_overrides
    from hpc_nst.metrics.judge import load_judge
    from hpc_nst.metrics.style_class import load_classifier

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--triplets", type=Path, nargs="+",
                    help="triplet folders (default: manifests/triplets); each a set")
    ap.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    ap.add_argument("--dev-suite", type=Path, metavar="CACHE_DIR",
                    help="the 104-pair dev suite (rendered into CACHE_DIR on first use)")
    ap.add_argument("--job", type=Path, default=ROOT / "jobs" / "paper.toml")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--label", default="")
    ap.add_argument("--csv", type=Path, help="every pair's metrics (a column `set`)")
    ap.add_argument("--outputs", type=Path, metavar="DIR",
                    help="write each output to DIR/<set>/<pair_id>.flac")
    ap.add_argument("--judge", type=Path, action="append", default=[], metavar="NPZ",
                    help="a further EQ-proof judge (a column judge_top1_<file stem>); repeatable")
    ap.add_argument("--oracle-style", action="store_true",
                    help="use the target as the style: an upper bound of what a method can "
                    "take from the style (diagnosis only, never a reported result)")
    args = ap.parse_args()
    cfg = load_job(args.job, parse_overrides(args.sets))
    clf = load_classifier()
    judges = {"judge_top1": load_judge(), **{f"judge_top1_{p.stem}": load_judge(p)
                                             for p in args.judge}}
    if len(judges) < len(args.judge) + 1:
        ap.error("--judge files need distinct file names (each names a column)")
    if args.dev_suite:
        if args.triplets or args.split != "dev":
            ap.error("--dev-suite chooses its own sets and splits: drop --triplets / --split")
        sets = dev_suite(args.dev_suite)
    else:
        args.triplets = args.triplets or [TUNED]
        names = [p.name for p in args.triplets]
        if len(set(names)) < len(names):
            ap.error("--triplets folders need distinct names (each names a set)")
        sets = [(p.name, p, args.split) for p in args.triplets]
    # every set's pairs selected (and its split checked) before any is computed
    selected = [split_pairs(folder, pd.read_csv(folder / "manifest.csv"), split)
                for _, folder, split in sets]
    name = args.label or f"{cfg.method} {' '.join(args.sets)}" + (
        " [oracle style = target]" if args.oracle_style else "")
    frames = []
    for (set_name, folder, split), rows in zip(sets, selected):
        df = evaluate(set_name, folder, rows, cfg, args, judges, clf).assign(set=set_name)
        frames.append(df)
        means = df.drop(columns=["pair_id", "set"]).mean()
        print(f"{name} [{set_name} {split}, {len(df)} pairs] " + " ".join(
            f"{k}={v:.3f}" for k, v in means.items()), flush=True)
    every = pd.concat(frames, ignore_index=True)
    if args.csv:
        every.to_csv(args.csv, index=False)
    if len(frames) > 1:
        means = every.drop(columns=["pair_id", "set"]).mean()
        counts = {k: int(every[k].sum()) for k in every.columns if k.startswith(VERDICTS)}
        print(f"{name} [all {len(every)} pairs] " + " ".join(
            f"{k}={counts[k]}" if k in counts else f"{k}={v:.3f}" for k, v in means.items()),
            flush=True)


if __name__ == "__main__":
    main()
