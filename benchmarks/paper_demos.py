"""Run the paper's two demo experiments and print bandwidth ratios and final losses.

    python benchmarks/paper_demos.py [--set KEY=VALUE ...] [--out DIR]

Harp + tuning fork should compress the bandwidth (ratio output/content < 1); singing voice +
violin should expand it (> 1). Both pairs run as one batch of two.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from hpc_nst.audio.io import load_audio, write_audio
from hpc_nst.config import load_job, parse_overrides
from hpc_nst.engine.methods import run_method
from hpc_nst.metrics.spectral import spectral_bandwidth

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", type=Path)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, help="write output audio here")
    args = parser.parse_args()
    cfg = load_job(args.job, parse_overrides(args.overrides))
    manifest = pd.read_csv(ROOT / "manifests" / "demo.csv")
    base = ROOT / "manifests"
    contents = [load_audio(base / p) for p in manifest["content"]]
    styles = [load_audio(base / p) for p in manifest["style"]]
    started = time.perf_counter()
    results = run_method(contents, styles, cfg)
    elapsed = time.perf_counter() - started
    for pid, c, s, r in zip(manifest["pair_id"], contents, styles, results):
        bw_c, bw_s, bw_o = (spectral_bandwidth(x) for x in (c, s, r.audio))
        final = {k: float(v[-1]) for k, v in r.losses.items()}
        losses = " ".join(f"{k}={v:.4g}" for k, v in final.items())
        print(
            f"{pid:14s} bandwidth content {bw_c:7.1f} Hz  style {bw_s:7.1f} Hz  "
            f"output {bw_o:7.1f} Hz  ratio {bw_o / bw_c:.3f}  SC {r.spectral_convergence:.3f}"
            f"  {losses}"
        )
        if args.out:
            write_audio(args.out / f"{pid}.wav", r.audio)
    print(
        f"{len(results)} pairs in {elapsed:.1f} s ({cfg.method}, model={cfg.model.name}, "
        f"{cfg.optim.iterations} iterations)"
    )


if __name__ == "__main__":
    main()
