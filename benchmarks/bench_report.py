"""Aggregation throughput and memory of ``hpc-nst report`` on large synthetic stores.

    python benchmarks/bench_report.py [--pairs 10000 100000] [--dir /tmp/bench_report]
                                      [--metrics run,spectral] [--details 10] [--keep]

For each size, a store is created with the batch engine's own API (``create_store``, the layout
``hpc-nst run`` would choose: batch size 4, automatic shards) and filled with fake results: every
1000th pair failed, the others done with 0.3 s of periodic output audio, loss curves, timings.
Then ``hpc-nst report`` runs in a fresh process; its wall time and peak RSS (``ru_maxrss`` of
the child) are printed. Memory that does not grow from 10 000 to 100 000 pairs shows the
aggregation streams. The default metric groups are the cheap ones that need no ground truth
(``run``: losses, convergence, runtime; ``spectral``: centroid/bandwidth of the output and of
the two input files, cached per path).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000
OUT_SAMPLES = 4800  # 0.3 s of output per pair
PERIODS = (80, 40, 20, 10)  # 200-1600 Hz: exactly periodic, so it compresses well


def make_store(path: Path, n: int) -> float:
    """Create and fill a fake n-pair store; returns the seconds it took."""
    from hpc_nst.batch import store as st
    from hpc_nst.batch import store_creation as sc
    from hpc_nst.batch.manifest import read_manifest
    from hpc_nst.batch.runner import pairs_per_task
    from hpc_nst.batch.tasks import store_order
    from hpc_nst.config import load_job

    t0 = time.perf_counter()
    d = path.parent
    t = np.arange(int(0.3 * SR)) / SR
    sf.write(d / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    sf.write(d / "b.wav", (0.3 * np.sin(2 * np.pi * 660 * t)).astype(np.float32), SR)
    with open(d / "manifest.csv", "w") as fh:
        fh.write("pair_id,content,style\n")
        fh.writelines(f"p{i:06d},a.wav,b.wav\n" for i in range(n))
    cfg = load_job(overrides={"iterations": "20", "model": "random", "width": "4"})
    man = read_manifest(d / "manifest.csv", cfg)
    order = store_order(man.pairs)
    ppt = pairs_per_task(n, 4, None)
    frames, samples, records = sc.capacities(man, cfg)
    sc.create_store(path, cfg, man, order, sc.Layout(n, ppt, 4, frames, samples, records))
    root = st.open_root(path, mode="r+")
    rng = np.random.default_rng(0)
    block = max(ppt, (st.META_CHUNK // ppt) * ppt)
    tones = np.stack([0.5 * np.sin(2 * np.pi * np.arange(OUT_SAMPLES) / p) for p in PERIODS])
    tones = np.round(tones * 256) / 256
    for b0 in range(0, n, block):
        b1 = min(b0 + block, n)
        m = b1 - b0
        failed = (np.arange(b0, b1) % 1000) == 999
        root["error"][b0:b1] = np.array(["fake failure" if f else "" for f in failed],
                                        dtype=object)
        root["samples"][b0:b1] = np.where(failed, 0, OUT_SAMPLES)
        root["frames"][b0:b1] = np.where(failed, 0, 1 + OUT_SAMPLES // 160)[:, None]
        root["records"][b0:b1] = np.where(failed, 0, records)
        root["spectral_convergence"][b0:b1] = rng.uniform(0.05, 0.3, m).astype(np.float32)
        timings = np.full((m, len(st.TIMINGS)), np.nan)
        now = time.time()
        timings[:, st.TIMINGS.index("optimise_s")] = 2.0
        timings[:, st.TIMINGS.index("load_s")] = 0.01
        timings[:, st.TIMINGS.index("started_at")] = now + np.arange(m) // 4
        root["timings"][b0:b1] = timings
        curve = np.exp(-np.arange(records) / 5.0)[None, None, :] * rng.uniform(
            0.5, 2.0, (m, len(root["term"][:]), 1))
        root["loss"][b0:b1] = curve.astype(np.float32)
        for a0 in range(b0, b1, 1024):
            a1 = min(a0 + 1024, b1)
            root["audio"][a0:a1, :OUT_SAMPLES] = tones[np.arange(a0, a1) % len(PERIODS)]
        root["status"][b0:b1] = np.where(failed, st.FAILED, st.DONE).astype(np.int8)
    return time.perf_counter() - t0


def run_report(store: Path, out: Path, metrics: str, details: int) -> tuple[float, float, str]:
    """Wall seconds and peak RSS (MiB) of ``hpc-nst report`` in a child process."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "hpc_nst", "report", str(store), "-o", str(out), "--metrics",
         metrics, "--details", str(details), "--quiet"],
        capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss, proc.stdout.splitlines()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--dir", type=Path, default=Path("/tmp/bench_report"))
    ap.add_argument("--metrics", default="run,spectral")
    ap.add_argument("--details", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the stores and reports")
    args = ap.parse_args()
    print(f"{'pairs':>8} {'create s':>9} {'store MiB':>9} {'report s':>9} {'pairs/s':>8} "
          f"{'peak RSS MiB':>12}")
    for n in sorted(args.pairs):  # ascending: RUSAGE_CHILDREN keeps the largest child so far
        d = args.dir / f"n{n}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        store = d / "store.zarr"
        created = make_store(store, n)
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 2**20
        wall, rss, line = run_report(store, d / "report", args.metrics, args.details)
        print(f"{n:>8} {created:>9.1f} {size:>9.1f} {wall:>9.1f} {n / wall:>8.0f} {rss:>12.0f}")
        print(f"         {line}")
        if not args.keep:
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
