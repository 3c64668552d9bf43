"""``hpc-nst status STORE``: counts by state, failures with their messages, throughput."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the state of a batch store (hpc-nst run)")
    p.add_argument("store", type=Path, help="the Zarr store written by hpc-nst run")
    p.add_argument("--failures", default="20", metavar="N|all",
                   help="failed pairs to list (default 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def collect(path: Path) -> dict[str, Any]:
    """Everything ``status`` reports, as a dict."""
    from hpc_nst.batch.store import DONE, FAILED, TIMINGS, open_root, read_column

    root = open_root(path)
    status = read_column(root, "status")
    ids, rows = read_column(root, "pair"), read_column(root, "row")
    errors, attempts = read_column(root, "error"), read_column(root, "attempts")
    timings = read_column(root, "timings")
    devices = read_column(root, "device")
    done, failed = status == DONE, status == FAILED
    pending = ~(done | failed)
    t = {k: timings[:, j] for j, k in enumerate(TIMINGS)}
    compute = (t["features_s"] + t["optimise_s"] + t["griffin_lim_s"])[done]
    runs = []
    for r in root.attrs.get("runs", []):
        if "t_end" in r:
            fin = t["finished_at"]
            n = int(np.sum(done & (fin >= r["t_start"]) & (fin <= r["t_end"])))
            wall = max(r["t_end"] - r["t_start"], 1e-9)
            runs.append({"started": r.get("started"), "pairs_done": n, "wall_s": round(wall, 1),
                         "pairs_per_hour": round(n / wall * 3600, 1),
                         "interrupted": r.get("interrupted", False)})
    layout = root.attrs["layout"]
    return {
        "store": str(path), "created": root.attrs.get("created"),
        "job_digest": root.attrs.get("job_digest"),
        "manifest": root.attrs.get("manifest", {}).get("path"),
        "pairs": int(len(status)), "pairs_per_task": layout["pairs_per_task"],
        "done": int(done.sum()), "failed": int(failed.sum()), "pending": int(pending.sum()),
        "started_not_finished": int((pending & (attempts > 0)).sum()),
        "retried": int((attempts > 1).sum()),
        "devices": {str(d): int(n) for d, n in zip(*np.unique(devices[done].astype(str),
                                                              return_counts=True))},
        "compute_s_per_batch_median": float(np.median(compute)) if compute.size else None,
        "runs": runs,
        "failures": [{"pair_id": str(ids[i]), "line": int(rows[i]), "attempts": int(attempts[i]),
                      "error": str(errors[i])} for i in np.flatnonzero(failed)],
    }


def run(args: argparse.Namespace) -> int:
    from hpc_nst.batch.store import StoreError
    from hpc_nst.cli import UserError

    try:
        info = collect(args.store)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    limit = len(info["failures"]) if args.failures == "all" else int(args.failures)
    print(f"{info['store']}: {info['pairs']} pairs in shards of {info['pairs_per_task']} "
          f"(created {info['created']}, job {info['job_digest']})")
    print(f"  done {info['done']}, failed {info['failed']}, pending {info['pending']}"
          + (f" ({info['started_not_finished']} started but not finished)"
             if info["started_not_finished"] else ""))
    if info["retried"]:
        print(f"  {info['retried']} pair(s) needed more than one attempt")
    if info["devices"]:
        print("  devices: " + ", ".join(f"{d} {n}" for d, n in info["devices"].items()))
    if info["compute_s_per_batch_median"] is not None:
        print(f"  compute per batch (features + optimisation + Griffin-Lim), median: "
              f"{info['compute_s_per_batch_median']:.2f} s")
    for r in info["runs"]:
        print(f"  run {r['started']}: {r['pairs_done']} pairs done in {r['wall_s']} s "
              f"({r['pairs_per_hour']:.0f} pairs/h){' [interrupted]' if r['interrupted'] else ''}")
    if info["failures"]:
        print("failed pairs:")
        for f in info["failures"][:limit]:
            print(f"  {f['pair_id']} (manifest line {f['line']}, {f['attempts']} attempt(s)): "
                  f"{f['error']}")
        if len(info["failures"]) > limit:
            print(f"  ... and {len(info['failures']) - limit} more (--failures all)")
    return 0
