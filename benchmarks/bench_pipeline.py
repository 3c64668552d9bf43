"""End-to-end pipeline benchmark: where a batch's time goes, stage by stage.

    python benchmarks/bench_pipeline.py --pairs 16 --device cpu [--lengths 2.56 8]
        [--batch-size 4] [--workers 1] [--tasks-per-worker N] [--job jobs/paper.toml]
        [--set KEY=VALUE ...]
        [--results benchmarks/results]
    python benchmarks/bench_pipeline.py --table [--update-readme]

Generates ``--pairs`` content/style pairs from the demo recordings (looped or cut to the asked
lengths, cycling through them), runs them through :func:`hpc_nst.batch.runner.run_batch` (what
``hpc-nst run`` does) on a local cluster on ``--device``, then ``hpc-nst report``'s metrics,
and prints pairs/h and the time per stage summed over pairs:

- decode/resample (``load_s``), features/targets, optimisation, Griffin-Lim: as the workers
  timed them (batch totals counted once per batch);
- store write: per task; metrics: the report's evaluation of the finished store;
- waiting: worker time not spent in a task (scheduler, start-up, the driver's recording,
  the last tasks' tail) = workers x tasks per worker x run wall - busy time (with two tasks
  at a time per worker, a GPU's default, the stages of the two overlap: their sums can
  exceed the wall time);
- padding: the share of the optimisation computed on padding, where pairs of different
  lengths ran as one padded batch (the GPU path; the CPU engine runs each pair alone).

Each run writes ``<results>/pipeline-<device>-<time>.json`` (device, versions, commit,
parameters, figures); ``--table`` prints the README table from every such file, and
``--update-readme`` writes it between the README's ``pipeline-table`` markers.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "manifests" / "demo"
RESULTS = REPO / "benchmarks" / "results"
STAGES = ("decode", "features", "optimisation", "griffin_lim", "write", "metrics", "waiting")
MARK = ("<!-- pipeline-table -->", "<!-- /pipeline-table -->")


def make_inputs(folder: Path, pairs: int, lengths: list[float], sr: int = 16000) -> Path:
    """``pairs`` rows of demo recordings looped/cut to ``lengths`` (cycled); the manifest."""
    sources = [sf.read(f, dtype="float32", always_2d=True)[0].mean(axis=1)
               for f in sorted(DEMO.glob("*.flac"))]
    rows = []
    for i in range(pairs):
        n = int(round(lengths[i % len(lengths)] * sr))
        names = []
        for role, k in (("c", i), ("s", i + 1)):
            src = sources[k % len(sources)]
            clip = np.resize(src, n)  # loops a short recording, cuts a long one
            path = folder / f"{role}{i:05d}.flac"
            sf.write(path, clip, sr)
            names.append(path.name)
        rows.append(f"p{i:05d},{names[0]},{names[1]}")
    manifest = folder / "m.csv"
    manifest.write_text("pair_id,content,style\n" + "\n".join(rows) + "\n")
    return manifest


def stage_times(store: Path) -> dict[str, float]:
    """Stage seconds summed over pairs (batch and task shared times counted once)."""
    import xarray as xr

    ds = xr.open_zarr(store)
    t = ds.timings.to_pandas()
    done = ds.status.values == 1
    t = t[done]
    batch = ds.batch.values[done]
    frames = ds.frames.values[done]  # (content, style, init, output)
    sizes = ds.batch_pairs.values[done]
    shared = t.div(np.maximum(sizes, 1), axis=0)  # a group's timings are on each of its pairs
    task_key = t["finished_at"].round(6)  # every pair of a task shares its finish time
    per_task = t.assign(task=task_key).groupby("task")
    busy = float((per_task["finished_at"].max() - per_task["started_at"].min()).sum())
    out = {"decode": float(t["load_s"].sum()),
           "features": float(shared["features_s"].sum()),
           "optimisation": float(shared["optimise_s"].sum()),
           "griffin_lim": float(shared["griffin_lim_s"].sum()),
           "write": float(per_task["write_s"].first().sum()), "busy": busy}
    # padding: pairs run together (batch_pairs > 1) are padded to the longest of the group
    work = pad = 0.0
    for b in np.unique(batch):
        sel = batch == b
        longest = frames[sel, 3].max()
        n = int(sizes[sel][0])
        if n > 1:
            pad += float((longest - frames[sel, 3]).sum())
        work += float(longest * sel.sum()) if n > 1 else float(frames[sel, 3].sum())
    out["padding_share"] = pad / work if work else 0.0
    return out


def versions() -> dict[str, str]:
    import dask
    import torch
    import zarr

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(  # code only: edited docs do not change a measurement
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "hpc_nst",
             "benchmarks", "jobs", "pyproject.toml"],
            cwd=REPO, capture_output=True, text=True).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"commit": commit, "python": platform.python_version(), "torch": torch.__version__,
            "dask": dask.__version__, "zarr": zarr.__version__}


def run(args: argparse.Namespace) -> dict:
    from distributed import Client

    from hpc_nst.batch.cluster import ClusterOptions, make_cluster
    from hpc_nst.batch.runner import RunOptions, run_batch
    from hpc_nst.batch.worker_process import device_name
    from hpc_nst.config import load_job, parse_overrides

    cfg = load_job(args.job, overrides=parse_overrides(args.set))
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        folder = Path(tmp)
        manifest = make_inputs(folder, args.pairs, args.lengths)
        handle = make_cluster(ClusterOptions(workers=args.workers,
                                             gpus=1 if args.device == "cuda" else 0,
                                             tasks_per_worker=args.tasks_per_worker))
        with Client(handle.cluster) as client:
            client.run(lambda: __import__("hpc_nst.batch.worker") and __import__("torch"))
            opts = RunOptions(batch_size=args.batch_size, device=args.device, quiet=True)
            t0 = time.perf_counter()
            summary = run_batch(manifest, folder / "s.zarr", cfg, opts, client=client,
                                handle=handle)
            wall = time.perf_counter() - t0
        handle.cluster.close()
        stages = stage_times(folder / "s.zarr")
        stages["metrics"] = 0.0
        if not args.no_report:  # the report needs librosa & co., which a GPU node may lack
            from hpc_nst.report.build import build_report

            t0 = time.perf_counter()
            build_report([folder / "s.zarr"], folder / "report")
            stages["metrics"] = time.perf_counter() - t0
    workers = args.workers
    slot_time = workers * handle.slots * wall
    stages["waiting"] = max(0.0, slot_time - stages.pop("busy"))
    engine = stages["features"] + stages["optimisation"] + stages["griffin_lim"]
    result = {
        "what": "pipeline", "device": args.device,
        "device_name": device_name("cuda" if args.device == "cuda" else "cpu"),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **versions(),
        "pairs": args.pairs, "done": summary.done, "lengths_s": args.lengths,
        "batch_size": args.batch_size, "workers": workers, "threads": handle.threads,
        "tasks_per_worker": handle.slots,
        "job": str(args.job or "default"), "overrides": args.set,
        "iterations": cfg.optim.iterations, "wall_s": round(wall, 3),
        "pairs_per_hour": round(summary.done / wall * 3600, 1),
        "stages_s": {k: round(v, 3) for k, v in stages.items() if k != "padding_share"},
        "padding_share": round(stages["padding_share"], 4),
        "engine_s": round(engine, 3),
        # task-slot time over the optimisation's (summed over tasks that may overlap)
        "end_to_end_over_optimisation": round(slot_time / stages["optimisation"], 3),
        "end_to_end_over_engine": round(slot_time / engine, 3),
    }
    return result


def table(results: Path) -> str:
    rows = ["| when | commit | device | pairs × lengths | batch | workers × threads | pairs/h "
            "| decode | features | optimisation | Griffin-Lim | write | metrics | waiting "
            "| padding | wall / optimisation |",
            "|" + "---|" * 16]
    for f in sorted(results.glob("pipeline-*.json")):
        r = json.loads(f.read_text())
        s = r["stages_s"]
        total = sum(s.values())
        cell = [f"{s[k]:.1f} s ({100 * s[k] / total:.0f} %)" for k in STAGES]
        rows.append(f"| {r['when'][:16]} | {r['commit']} | {r['device_name']} | "
                    f"{r['pairs']} × {'/'.join(str(x) for x in r['lengths_s'])} s | "
                    f"{r['batch_size']} | {r['workers']} × {r['threads']}"
                    f"{_slots(r.get('tasks_per_worker', 1))} | "
                    f"{r['pairs_per_hour']:.0f} | " + " | ".join(cell) +
                    f" | {100 * r['padding_share']:.1f} % | "
                    f"{r['end_to_end_over_optimisation']:.2f}× |")
    return "\n".join(rows)


def _slots(n: int) -> str:
    return f" ({n} tasks at a time)" if n > 1 else ""


def update_readme(text: str, readme: Path = REPO / "README.md") -> None:
    doc = readme.read_text()
    a, b = doc.index(MARK[0]) + len(MARK[0]), doc.index(MARK[1])
    readme.write_text(doc[:a] + "\n" + text + "\n" + doc[b:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--lengths", type=float, nargs="+", default=[2.56],
                   help="clip lengths in seconds, cycled over the pairs")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--tasks-per-worker", type=int, default=None,
                   help="tasks a worker runs at once (default: 2 on a GPU, one per core on "
                   "a CPU)")
    p.add_argument("--job", type=Path, default=None, help="a job preset (default: built in)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--tmp", type=Path, default=None, help="where the inputs and store go")
    p.add_argument("--no-save", action="store_true", help="print only, write no JSON")
    p.add_argument("--no-report", action="store_true",
                   help="skip the report's metrics (metrics then 0 s)")
    p.add_argument("--table", action="store_true", help="print the table of saved results")
    p.add_argument("--update-readme", action="store_true")
    args = p.parse_args(argv)
    if args.table or args.update_readme:
        text = table(args.results)
        print(text)
        if args.update_readme:
            update_readme(text)
        return 0
    result = run(args)
    print(json.dumps(result, indent=1))
    if not args.no_save:
        args.results.mkdir(parents=True, exist_ok=True)
        out = args.results / f"pipeline-{args.device}-{time.strftime('%Y%m%dT%H%M%S')}.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        print(f"saved {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
