"""Train the post-filter shipped as ``hpc_nst/assets/post-filter.pt`` (method ``layered-post``).

    python benchmarks/train_post_filter.py --work DIR [--out hpc_nst/assets/post-filter.pt]
        [--count 600] [--seed 101] [--train-seed 101] [--texture-weight 0]

Renders ``--count`` FluidR3 triplets of 2.56 s with their own seed (101: no pair of the dev
suite or of the held-out sets among them) into DIR/triplets, runs ``layered`` on each
(DIR/outputs/<pair_id>.npy; both steps are skipped where already done), then trains
(:mod:`hpc_nst.train.post_filter`, about a minute on two cores) and writes the checkpoint with
a record of how it was made. The whole run took about 10 minutes on this project's 2-core CPU.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import pandas as pd
    import soundfile as sf

    from hpc_nst.config import load_job
    from hpc_nst.data.triplets import render_triplets
    from hpc_nst.engine.methods.layered import layered_transfer
    from hpc_nst.models.post_filter import save_post_filter
    from hpc_nst.train.post_filter import PostFilterTraining, load_examples, train_post_filter

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=ROOT / "hpc_nst" / "assets" / "post-filter.pt")
    ap.add_argument("--count", type=int, default=600)
    ap.add_argument("--seed", type=int, default=101, help="seed of the training triplets")
    ap.add_argument("--train-seed", type=int, default=PostFilterTraining.seed)
    ap.add_argument("--texture-weight", type=float, default=PostFilterTraining.texture_weight,
                    help="weight of the texture-statistics loss term (0: the shipped recipe)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    triplets, outputs = args.work / "triplets", args.work / "outputs"
    if not (triplets / "manifest.csv").is_file():
        render_triplets(triplets, [args.count], [2.56], seed=args.seed)
    outputs.mkdir(parents=True, exist_ok=True)
    cfg = load_job(ROOT / "jobs" / "layered.toml")
    for row in pd.read_csv(triplets / "manifest.csv").itertuples():
        out = outputs / f"{row.pair_id}.npy"
        if out.is_file():
            continue
        content, _ = sf.read(triplets / row.content, dtype="float32")
        style, _ = sf.read(triplets / row.style, dtype="float32")
        try:
            np.save(out, layered_transfer(content, style, cfg).astype(np.float32))
        except Exception as exc:  # noqa: BLE001 - a pair layered cannot take: left out
            logging.warning("%s: left out (%s)", row.pair_id, exc)
    opts = PostFilterTraining(seed=args.train_seed, texture_weight=args.texture_weight)
    model, record = train_post_filter(*load_examples(triplets, outputs), opts)
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    record |= {"triplets": f"hpc-nst dataset triplets --count {args.count} --seconds 2.56 "
                           f"--seed {args.seed} (FluidR3_GM)",
               "renderings": "method layered (jobs/layered.toml)", "commit": commit}
    print(save_post_filter(model, args.out, record), record["history"][-1])


if __name__ == "__main__":
    main()
