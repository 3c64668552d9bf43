"""Batch engine benchmarks (printed, not asserted).

    python benchmarks/bench_batch.py scale [--rows 100000] [--distinct-files]
    python benchmarks/bench_batch.py files [--pairs 40]
    python benchmarks/bench_batch.py overhead [--pairs 200] [--workers 2] [--batch-sizes 1 4]
        [--batches-per-task K|0]
    python benchmarks/bench_batch.py throughput [--pairs 4] [--batch-sizes 1 4]
    python benchmarks/bench_batch.py all            # everything, small sizes

- scale: validation (CSV parsing, file header checks, parameter digests, ids) and store creation
  for a synthetic manifest of ``--rows`` rows pointing at the demo FLACs (``--distinct-files``:
  one hard link per row, so every header is really read), then reopening it as a rerun does.
- files: the files a store holds, from the layout formula (also for 100 000 pairs) and counted
  on a real small store after a run.
- overhead: pairs per second through the scheduler and into the store with a negligible job
  (method content-copy, 0.3 s clips) on a local cluster that is already up.
- throughput: pairs per hour at the paper preset (jobs/paper.toml) on the local cluster, the
  demo's 2.56 s clips, for each batch size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from hpc_nst.batch import store as st
from hpc_nst.batch import store_creation as sc
from hpc_nst.batch.manifest import read_manifest
from hpc_nst.batch.resume import match_manifest
from hpc_nst.batch.runner import RunOptions, pairs_per_task, run_batch
from hpc_nst.batch.tasks import store_order
from hpc_nst.config import load_job

DEMO = Path(__file__).resolve().parents[1] / "manifests" / "demo"
#: Driver-written per-pair arrays that hold data after a run without targets or failures.
PER_PAIR_FILLED = ("pair", "row", "content_path", "style_path", "input_stamp", "seed",
                   "params", "params_digest") + tuple(a for a in st.RESULT_ARRAYS
                                                      if a != "error")
COORDINATES = ("bin", "frame", "kind", "record", "sample", "term", "timing")
#: every array: coordinates, the per-pair ones (+ error and target_path, empty here), bulk
N_ARRAYS = len(COORDINATES) + len(PER_PAIR_FILLED) + 2 + 3
BULK = ("spectrogram", "audio", "loss")


def expected_files(n_pairs: int, ppt: int) -> dict[str, int]:
    """Files of a finished store (no targets, no failures, clips under ~41 s)."""
    chunks = -(-n_pairs // min(st.META_CHUNK, n_pairs))
    out = {"metadata (zarr.json)": 1 + N_ARRAYS, "coordinate chunks": len(COORDINATES),
           "driver-written chunks": len(PER_PAIR_FILLED) * chunks,
           "worker shards (3 per task)": len(BULK) * -(-n_pairs // ppt)}
    out["total"] = sum(out.values())
    return out


def count_files(path: Path) -> int:
    return sum(len([f for f in files if f != st.LOCK_NAME]) for _, _, files in os.walk(path))


def _manifest(folder: Path, rows: int, distinct: bool) -> Path:
    files = sorted(DEMO.glob("*.flac"))
    for f in files:
        shutil.copy(f, folder / f.name)
    lines = ["pair_id,content,style,seed"]
    if distinct:
        (folder / "c").mkdir()
    for i in range(rows):
        content = files[i % len(files)].name
        if distinct:
            os.link(folder / content, folder / "c" / f"{i}.flac")
            content = f"c/{i}.flac"
        lines.append(f"r{i},{content},{files[(i + 1) % len(files)].name},{i % 7}")
    path = folder / "m.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def bench_scale(rows: int, distinct: bool) -> None:
    cfg = load_job()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        manifest = _manifest(folder, rows, distinct)
        print(f"scale: wrote a {rows}-row manifest"
              f"{' with one hard link per row' if distinct else ''} "
              f"({time.perf_counter() - t0:.1f} s, not counted)")
        t0 = time.perf_counter()
        man = read_manifest(manifest, cfg)
        t_validate = time.perf_counter() - t0
        assert not man.problems, man.problems[:3]
        t0 = time.perf_counter()
        order = store_order(man.pairs)
        ppt = pairs_per_task(len(order), 4, None)
        frames, samples, records = sc.capacities(man, cfg)
        path = folder / "s.zarr"
        sc.create_store(path, cfg, man, order,
                        sc.Layout(len(order), ppt, 4, frames, samples, records))
        t_create = time.perf_counter() - t0
        t0 = time.perf_counter()
        root = st.open_root(path, mode="r+")
        st.check_job(path, root, cfg)
        match_manifest(path, root, man)
        t_reopen = time.perf_counter() - t0
        print(f"  validation {t_validate:.2f} s ({rows / t_validate:,.0f} rows/s); "
              f"store creation {t_create:.2f} s ({-(-rows // ppt)} shards of {ppt}); "
              f"reopen + compare for a rerun {t_reopen:.2f} s; total "
              f"{t_validate + t_create:.2f} s")
        print(f"  store after creation: {count_files(path)} files, "
              f"{sum(f.stat().st_size for f in path.rglob('*') if f.is_file()) / 1e6:.1f} MB")


def bench_files(pairs: int) -> None:
    for n, b in ((100_000, 4), (100_000, 1), (100_000, 16), (1_000_000, 4)):
        ppt = pairs_per_task(n, b, None)
        e = expected_files(n, ppt)
        print(f"files: {n:,} pairs, batch size {b}, automatic {ppt // b} batch(es) per task "
              f"-> {ppt} pairs per shard: {e['total']:,} files ({e})")
    e = expected_files(100_000, 4)
    print(f"  (with --batches-per-task 1 and batch size 4: {e['total']:,} files)")
    with tempfile.TemporaryDirectory() as tmp:
        folder, summary = _quick_run(Path(tmp), pairs, batch=4, batches_per_task=2,
                                     method="nst")
        real = count_files(folder / "s.zarr")
        e = expected_files(pairs, 8)
        print(f"  measured on a real store of {pairs} pairs (tiny nst job) in shards of 8: "
              f"{real} files; formula {e['total']} ({summary.done} done)")


def _clips(folder: Path, pairs: int, seconds: float) -> Path:
    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    for k in range(4):
        sf.write(folder / f"{k}.wav", (0.3 * np.sin(2 * np.pi * (200 + 100 * k) * t))
                 .astype(np.float32), sr)
    rows = [f"p{i},{i % 4}.wav,{(i + 1) % 4}.wav,{i}" for i in range(pairs)]
    (folder / "m.csv").write_text("pair_id,content,style,seed\n" + "\n".join(rows) + "\n")
    return folder / "m.csv"


def _quick_run(folder: Path, pairs: int, batch: int, batches_per_task: int | None,
               method: str, client=None):  # noqa: ANN001, ANN202
    manifest = _clips(folder, pairs, 0.3)
    cfg = load_job(overrides={"method": method, "iterations": "3", "model": "random",
                              "width": "4", "griffin_lim_iterations": "2"})
    opts = RunOptions(batch_size=batch, batches_per_task=batches_per_task, quiet=True)
    if client is not None:
        return folder, run_batch(manifest, folder / "s.zarr", cfg, opts, client=client)
    from hpc_nst.batch.cluster import ClusterOptions

    return folder, run_batch(manifest, folder / "s.zarr", cfg, opts,
                             ClusterOptions(workers=2))


def bench_overhead(pairs: int, workers: int, batch_sizes: list[int],
                   batches_per_task: int | None = 1) -> None:
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as lc, \
            Client(lc) as client:
        client.submit(sum, [1]).result()
        print(f"overhead: local cluster of {workers} workers up in "
              f"{time.perf_counter() - t0:.1f} s (not counted)")
        client.run(lambda: __import__("hpc_nst.batch.worker") and __import__("torch"))
        for batch in batch_sizes:
            with tempfile.TemporaryDirectory() as tmp:
                t0, cpu0 = time.perf_counter(), time.process_time()
                _, s = _quick_run(Path(tmp), pairs, batch, batches_per_task, "content-copy",
                                  client)
                wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
                tasks = -(-pairs // pairs_per_task(pairs, batch, batches_per_task))
                print(f"  batch size {batch}, {pairs_per_task(pairs, batch, batches_per_task)} "
                      f"pairs per task: {pairs} pairs ({tasks} tasks) in {wall:.1f} s = "
                      f"{pairs / wall:.1f} pairs/s, {wall / tasks * 1000 * workers:.0f} ms "
                      f"per task per worker, validation and store creation included "
                      f"({s.done} done); driver + scheduler CPU {cpu:.1f} s = "
                      f"{cpu / tasks * 1000:.1f} ms per task, {cpu / pairs * 1000:.2f} ms per "
                      "pair", flush=True)


def bench_throughput(pairs: int, batch_sizes: list[int]) -> None:
    from distributed import Client

    from hpc_nst.batch.cluster import ClusterOptions, make_cluster

    files = sorted(DEMO.glob("*.flac"))
    cfg = load_job(Path(__file__).resolve().parents[1] / "jobs" / "paper.toml")
    handle = make_cluster(ClusterOptions())
    print(f"throughput at the paper preset ({cfg.optim.iterations} iterations, Griffin-Lim "
          f"{cfg.griffin_lim.iterations}), 2.56 s clips, {handle.description}")
    with Client(handle.cluster) as client:
        for batch in batch_sizes:
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                rows = [f"p{i},{files[i % 4]},{files[(i + 1) % 4]},{i}" for i in range(pairs)]
                (folder / "m.csv").write_text("pair_id,content,style,seed\n"
                                              + "\n".join(rows) + "\n")
                opts = RunOptions(batch_size=batch, batches_per_task=1, quiet=True)
                t0 = time.perf_counter()
                s = run_batch(folder / "m.csv", folder / "s.zarr", cfg, opts, client=client,
                              handle=handle)
                wall = time.perf_counter() - t0
                print(f"  batch size {batch}: {s.done}/{pairs} pairs in {wall:.0f} s = "
                      f"{pairs / wall * 3600:.1f} pairs/hour", flush=True)
    handle.cluster.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("scale", "files", "overhead", "throughput", "all"))
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--distinct-files", action="store_true")
    p.add_argument("--pairs", type=int)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                   help="default: 1 4")
    p.add_argument("--batches-per-task", type=int, default=1,
                   help="overhead: batches per task (0: automatic, as hpc-nst run)")
    a = p.parse_args(argv)
    print(f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; python "
          f"{sys.version.split()[0]}", flush=True)
    if a.what in ("scale", "all"):
        bench_scale(a.rows, a.distinct_files)
    if a.what in ("files", "all"):
        bench_files(a.pairs or 40)
    if a.what in ("overhead", "all"):
        bench_overhead(a.pairs or 200, a.workers, a.batch_sizes or [1, 4],
                       a.batches_per_task or None)
    if a.what in ("throughput", "all"):
        bench_throughput(a.pairs or 4, a.batch_sizes or [1, 4])
    return 0


if __name__ == "__main__":
    sys.exit(main())
