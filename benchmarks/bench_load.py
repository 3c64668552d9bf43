"""Load and faults: N pairs through ``hpc-nst run`` with a no-op method that fails and kills
workers at random; rerun with ``--retry-failed`` until every pair is done; verify the store.

    python benchmarks/bench_load.py [--pairs 10000] [--workers 8] [--batch-size 4]
        [--fail 0.05] [--kill 0.005]

Prints, per round, the pairs done and failed and the wall time, then pairs per second over all
rounds (the driver, scheduler and store overhead per pair: the method itself costs ~1 ms) and
the result of ``hpc-nst verify``. Figures are quoted in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=10000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--fail", type=float, default=0.05, help="failure probability per call")
    ap.add_argument("--kill", type=float, default=0.005, help="worker kill probability per call")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])
    os.environ["HPC_NST_PLUGINS"] = "chaos_plugin"
    os.environ["HPC_NST_CHAOS_FAIL"] = str(args.fail)
    os.environ["HPC_NST_CHAOS_KILL"] = str(args.kill)
    sys.path.insert(0, str(HERE))

    from distributed import Client, LocalCluster

    from hpc_nst.batch.runner import RunOptions, register_drain, run_batch
    from hpc_nst.batch.verify import verify_store
    from hpc_nst.config import load_job

    tmp = Path(tempfile.mkdtemp(prefix="hpc-nst-load-"))
    rng = np.random.default_rng(0)
    for k in range(4):
        sf.write(tmp / f"c{k}.wav", (0.1 * rng.standard_normal(4800)).astype(np.float32), 16000)
    manifest = tmp / "m.csv"
    manifest.write_text("pair_id,content,style\n" + "".join(
        f"p{i:06d},c{i % 4}.wav,c{(i + 1) % 4}.wav\n" for i in range(args.pairs)))
    store = tmp / "load.zarr"
    cfg = load_job(overrides={"method": "chaos-copy"})
    total_wall, rounds = 0.0, []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        register_drain(client)
        for r in range(args.rounds):
            t0 = time.perf_counter()
            s = run_batch(manifest, store, cfg, RunOptions(
                batch_size=args.batch_size, retry_failed=r > 0, progress_interval=30,
                quiet=True), client=client)
            wall = time.perf_counter() - t0
            total_wall += wall
            rounds.append((r, s.ran, s.done, s.failed, wall))
            print(f"round {r}: ran {s.ran} pairs in {wall:.1f} s ({s.ran / wall:.0f} pairs/s); "
                  f"store: {s.done} done, {s.failed} failed, {s.pending} pending", flush=True)
            if s.done == args.pairs:
                break
    res = verify_store(store)
    ran = sum(x[1] for x in rounds)
    state = "all done" if rounds and rounds[-1][2] == args.pairs else "NOT all done"
    print(f"{args.pairs} pairs, {args.workers} workers, batch {args.batch_size}, fail "
          f"{args.fail}, kill {args.kill}: {state} after {len(rounds)} round(s), "
          f"{ran} pair runs in {total_wall:.1f} s = {ran / total_wall:.0f} pairs/s; "
          f"verify: {res.checked} checked, {len(res.bad)} bad, ok={res.ok}")


if __name__ == "__main__":
    main()
