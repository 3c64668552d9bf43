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
    p.add_argument("--watch", nargs="?", type=float, const=10.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 10) until the batch ends: no pair "
                        "pending, or the driver gone (waits for the store to appear)")
    p.set_defaults(func=run)


def collect(path: Path) -> dict[str, Any]:
    """Everything ``status`` reports, as a dict."""
    from hpc_nst.batch.reader import pairs_table, store_info

    info = store_info(path)
    table = pairs_table(info)
    status = table["status"].to_numpy()
    ids, rows = table["pair"].to_numpy(), table["row"].to_numpy()
    errors, attempts = table["error"].to_numpy(), table["attempts"].to_numpy()
    devices = table["device"].to_numpy()
    done, failed = status == "done", status == "failed"
    pending = ~(done | failed)
    t = {k: table[k].to_numpy(dtype=float) for k in
         ("features_s", "optimise_s", "griffin_lim_s", "finished_at")}
    compute = (t["features_s"] + t["optimise_s"] + t["griffin_lim_s"])[done]
    runs = []
    attrs = info.attrs
    for r in attrs.get("runs", []):
        if "t_end" in r:
            fin = t["finished_at"]
            n = int(np.sum(done & (fin >= r["t_start"]) & (fin <= r["t_end"])))
            wall = max(r["t_end"] - r["t_start"], 1e-9)
            runs.append({"started": r.get("started"), "pairs_done": n, "wall_s": round(wall, 1),
                         "pairs_per_hour": round(n / wall * 3600, 1),
                         "interrupted": r.get("interrupted", False)})
    accounting: dict[str, Any] = {}
    if "device_s" in table:
        kinds = np.array([str(d).split(":")[0] for d in devices])
        secs = table["device_s"].to_numpy(dtype=float)
        accounting["device_hours"] = {
            str(k): round(float(np.nansum(secs[done & (kinds == k)])) / 3600, 6)
            for k in sorted(set(kinds[done].tolist()))}
        jobs = sorted({str(j) for j in table["scheduler_job"].to_numpy()[done] if str(j)})
        accounting["scheduler_jobs"] = jobs
        peak = table["peak_memory_mb"].to_numpy(dtype=float)[done]
        accounting["peak_memory_mb_max"] = (float(np.nanmax(peak)) if np.isfinite(peak).any()
                                            else None)
        names = sorted({str(n) for n in table["device_name"].to_numpy()[done] if str(n)})
        accounting["device_names"] = names
    return {
        "store": str(path), "created": attrs.get("created"),
        "accounting": accounting,
        "job_digest": attrs.get("job_digest"),
        "manifest": attrs.get("manifest", {}).get("path"),
        "pairs": int(len(status)), "pairs_per_task": info.pairs_per_task,
        "method": info.method, "loss_terms": list(info.terms),
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


def driver_running(path: Path, info: dict[str, Any]) -> bool:
    """True while a driver holds the store's lock (a lock whose process is known to be gone,
    on this host, does not count), or its last run has not ended (another host's driver)."""
    from hpc_nst.batch.lock import owner_alive
    from hpc_nst.batch.store import LOCK_NAME

    lock = path / LOCK_NAME
    alive = owner_alive(lock) if lock.exists() else False
    if alive is not None:
        return alive
    runs = info.get("runs_raw") or []
    return lock.exists() or bool(runs and "t_end" not in runs[-1])


def watch(args: argparse.Namespace) -> int:
    """Redraw the status every ``args.watch`` seconds until the batch ends."""
    import io
    import sys
    import time

    from hpc_nst.batch.store import open_root, root_attrs

    tty = sys.stdout.isatty()
    started, first_done = time.monotonic(), None
    while not (args.store / "zarr.json").is_file():
        print(f"waiting for {args.store} to be created (Ctrl-C to stop)", flush=True)
        time.sleep(args.watch)
    try:
        while True:
            info = collect(args.store)
            info["runs_raw"] = list(root_attrs(open_root(args.store)).get("runs", []))
            running = driver_running(args.store, info)
            first_done = info["done"] if first_done is None else first_done
            buf = io.StringIO()
            show(info, args.failures, buf)
            elapsed = time.monotonic() - started
            rate = (info["done"] - first_done) / elapsed * 3600 if elapsed > 0 else 0.0
            left = info["pending"]
            eta = f"{left / rate * 3600:.0f} s" if rate > 0 and left else "?"
            state = "driver running" if running else "no driver"
            buf.write(f"[{time.strftime('%H:%M:%S')}] {info['done']}/{info['pairs']} done, "
                      f"{left} pending, {info['failed']} failed | {rate:.0f} pairs/h while "
                      f"watching | ETA {eta} | {state}\n")
            print(("\x1b[H\x1b[2J" if tty else "") + buf.getvalue(), end="", flush=True)
            # While a driver runs it may be retrying failed pairs: the batch ends with it.
            if not running:
                print("batch finished" if left == 0 else
                      "the driver is gone with pairs pending: rerun hpc-nst run to resume")
                return 0 if left == 0 and info["failed"] == 0 else 1
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0


def run(args: argparse.Namespace) -> int:
    from hpc_nst.errors import UsageError

    if args.failures != "all" and not args.failures.isdigit():
        raise UsageError(f"--failures {args.failures!r}: a number or 'all'")
    if args.watch is not None:
        if args.watch <= 0 or args.json:
            raise UsageError("--watch takes a positive number of seconds, without --json")
        return watch(args)
    info = collect(args.store)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    show(info, args.failures)
    return 0


def show(info: dict[str, Any], failures: str, out: Any = None) -> None:
    """The human-readable status table."""
    import builtins
    import functools
    import sys

    print = functools.partial(builtins.print, file=out or sys.stdout)  # noqa: A001
    limit = len(info["failures"]) if failures == "all" else int(failures)
    print(f"{info['store']}: {info['pairs']} pairs in shards of {info['pairs_per_task']} "
          f"(created {info['created']}, job {info['job_digest']})")
    print(f"  done {info['done']}, failed {info['failed']}, pending {info['pending']}"
          + (f" ({info['started_not_finished']} started but not finished)"
             if info["started_not_finished"] else ""))
    if info["retried"]:
        print(f"  {info['retried']} pair(s) needed more than one attempt")
    if info["devices"]:
        print("  devices: " + ", ".join(f"{d} {n}" for d, n in info["devices"].items()))
    acct = info.get("accounting") or {}
    if acct.get("device_hours"):
        hours = ", ".join(f"{h:.4g} {'GPU' if k == 'cuda' else k.upper()}-hours"
                          for k, h in acct["device_hours"].items())
        jobs = acct["scheduler_jobs"]
        print(f"  device time: {hours}; on {', '.join(acct['device_names'])}; "
              f"{len(jobs)} scheduler job(s): {', '.join(jobs[:8])}"
              + (" ..." if len(jobs) > 8 else "")
              + (f"; peak memory {acct['peak_memory_mb_max']:.0f} MiB"
                 if acct.get("peak_memory_mb_max") is not None else ""))
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
