"""``hpc-nst status STORE``: counts by state, failures with their messages, throughput."""

from __future__ import annotations

import argparse
import getpass
import json
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

#: Job names of the shipped driver scripts (slurm/run.sbatch, slurm/run-in-allocation.sbatch).
DRIVER_JOB_NAMES = ("hpc-nst-driver", "hpc-nst-alloc")
#: Slurm job states of a driver still to start, or running (squeue -t).
LIVE_STATES = "PD,R,CF,RQ,RH,RF,RS,S"
#: Default of ``--grace``: seconds ``--watch`` waits for a driver to show up.
GRACE_S = 60.0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="show the state of a batch store (hpc-nst run)")
    p.add_argument("store", type=Path, help="the Zarr store written by hpc-nst run")
    p.add_argument("--failures", default="20", metavar="N|all",
                   help="failed pairs to list (default 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--watch", nargs="?", type=float, const=10.0, metavar="SECONDS",
                   help="refresh every SECONDS (default 10) until the batch ends: no pair "
                        "pending, or the driver gone (waits for the store to appear); "
                        "exit code 0 when every pair is done, else 1 (without --watch: 0; 2 when "
                        "the store cannot be read)")
    p.add_argument("--grace", type=float, default=GRACE_S, metavar="S",
                   help="with --watch: while pairs are pending and no driver was seen yet, "
                        f"wait this long for one before calling it gone (default {GRACE_S:g}); "
                        "a Slurm job of yours queued or running for this store (squeue) "
                        "always counts as its driver")
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
    lost = status == "lost"  # the status chunk's file is missing (see hpc-nst verify)
    pending = ~(done | failed)
    t = {k: table[k].to_numpy(dtype=float) for k in
         ("features_s", "optimise_s", "griffin_lim_s", "finished_at")}
    compute = _compute_per_batch(t)[done]
    compute = compute[np.isfinite(compute)]
    runs = []
    attrs = info.attrs
    for r in attrs.get("runs", []):
        if "t_end" in r:
            fin = t["finished_at"]
            n = int(r["done_in_run"]) if "done_in_run" in r else int(  # (earlier stores:
                np.sum(done & (fin >= r["t_start"]) & (fin <= r["t_end"])))  # from the pairs)
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
        # a pending pair with a note was reset to run again (verify --repair,
        # --recompute-changed); without one, it was started and not finished
        "started_not_finished": int((pending & ~lost & (attempts > 0) & (errors == "")).sum()),
        "lost": int(lost.sum()),
        "reset": int((pending & (errors != "")).sum()),
        "retried": int((attempts > 1).sum()),
        "devices": {str(d): int(n) for d, n in zip(*np.unique(devices[done].astype(str),
                                                              return_counts=True))},
        "compute_s_per_batch_median": round(float(np.median(compute)), 6) if compute.size
        else None,
        "runs": runs,
        "failures": [{"pair_id": str(ids[i]), "line": int(rows[i]), "attempts": int(attempts[i]),
                      "error": str(errors[i])} for i in np.flatnonzero(failed)],
    }


def _compute_per_batch(t: dict[str, np.ndarray]) -> np.ndarray:
    """Features + optimisation + Griffin-Lim seconds per pair: a stage a method does not have
    (NaN: no optimisation for a per-pair method) counts as 0; NaN when no stage was timed."""
    parts = np.stack([t["features_s"], t["optimise_s"], t["griffin_lim_s"]])
    timed = np.isfinite(parts).any(axis=0)
    return np.where(timed, np.nansum(np.where(np.isfinite(parts), parts, 0.0), axis=0), np.nan)


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, inf) replaced by None: valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def _squeue() -> list[str] | None:
    """``id|state|name|workdir|command`` of each of this user's queued or running Slurm jobs;
    None where squeue is missing or fails."""
    exe = shutil.which("squeue")
    if exe is None:
        return None
    try:
        user = ["-u", getpass.getuser()]
    except (KeyError, OSError):  # no name for this uid (some containers)
        user = ["-u", str(os.getuid())]
    try:
        proc = subprocess.run([exe, "-h", *user, "-t", LIVE_STATES, "-o", "%i|%T|%j|%Z|%o"],
                              capture_output=True, text=True, errors="replace", timeout=20)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.splitlines() if proc.returncode == 0 else None


def _same_path(token: str, workdir: str, target: Path) -> bool:
    """Whether a word of a job's command (a path, or ``--option=path``), relative to the job's
    working directory, is ``target``."""
    token = token.rstrip("/")
    if not token or (token.startswith("-") and "=" not in token):
        return False
    token = token.split("=", 1)[1] if token.startswith("-") else token
    path = Path(os.path.expanduser(token))
    if not path.is_absolute():
        if not workdir:
            return False
        path = Path(workdir) / path
    try:
        return path.resolve() == target
    except OSError:
        return False


def queued_driver(store: Path) -> str | None:
    """A Slurm job of this user, queued or running, that drives ``store``: one whose command
    names the store (``sbatch slurm/run.sbatch MANIFEST STORE ...``, as Slurm up to 22.05
    shows it; any job name) or, where a job named as the shipped driver scripts name theirs
    shows no arguments (Slurm 23.02 on shows the script alone; ``--wrap``; a script on
    stdin), any such job. The job this runs in never counts. Returns a description, or None
    (also without squeue)."""
    lines = _squeue()
    if not lines:
        return None
    target = store.resolve()
    own = os.environ.get("SLURM_JOB_ID", "")
    unknown = None
    for line in lines:
        parts = line.split("|", 4)
        if len(parts) < 5:
            continue
        job, state, name, workdir, command = (x.strip() for x in parts)
        if job == own:
            continue
        words = command.split()
        if any(_same_path(tok, workdir, target) for tok in words[1:]):
            return f"Slurm job {job} ({name}) {state}"
        if unknown is None and name in DRIVER_JOB_NAMES and len(words) <= 1:
            unknown = (f"Slurm job {job} ({name}) {state}; its arguments are not shown, so "
                       "any hpc-nst driver job of yours counts")
    return unknown


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
    first_done, seen = None, False
    while not (args.store / "zarr.json").is_file():
        print(f"waiting for {args.store} to be created (Ctrl-C to stop)", flush=True)
        time.sleep(args.watch)
    started = time.monotonic()  # the rate and the grace period count from here
    try:
        while True:
            info = collect(args.store)
            info["runs_raw"] = list(root_attrs(open_root(args.store)).get("runs", []))
            running = driver_running(args.store, info)
            finished = info["pending"] == 0 and info["failed"] == 0
            queued = None if running or finished else queued_driver(args.store)
            seen = seen or running or queued is not None
            first_done = info["done"] if first_done is None else first_done
            buf = io.StringIO()
            show(info, args.failures, buf)
            elapsed = time.monotonic() - started
            rate = (info["done"] - first_done) / elapsed * 3600 if elapsed > 0 else 0.0
            left = info["pending"]
            eta = f"{left / rate * 3600:.0f} s" if rate > 0 and left else "?"
            # A driver just submitted (sbatch) may not have taken the store's lock yet.
            waiting = bool(not (running or queued or seen) and left and elapsed < args.grace)
            state = ("driver running" if running else f"driver: {queued}" if queued else
                     f"no driver yet (waiting up to {args.grace - elapsed:.0f} s more)"
                     if waiting else "no driver")
            buf.write(f"[{time.strftime('%H:%M:%S')}] {info['done']}/{info['pairs']} done, "
                      f"{left} pending, {info['failed']} failed | {rate:.0f} pairs/h while "
                      f"watching | ETA {eta} | {state}\n")
            print(("\x1b[H\x1b[2J" if tty else "") + buf.getvalue(), end="", flush=True)
            # While a driver runs (or is queued) it may retry failed pairs: the batch ends
            # with it.
            if not (running or queued or waiting):
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
    if args.watch is None and not args.store.exists() and not args.store.is_symlink():
        raise UsageError(f"{args.store}: store not found")  # (--watch waits for it)
    if args.watch is not None:
        if args.watch <= 0 or args.json:
            raise UsageError("--watch takes a positive number of seconds, without --json")
        if args.grace < 0:
            raise UsageError("--grace must be >= 0")
        return watch(args)
    info = collect(args.store)
    if args.json:
        print(json.dumps(finite(info), indent=1, allow_nan=False))
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
             if info["started_not_finished"] else "")
          + (f" ({info['reset']} reset to run again: verify --repair or "
             "--recompute-changed)" if info.get("reset") else "")
          + (f" ({info['lost']} whose status is lost: see hpc-nst verify)"
             if info.get("lost") else ""))
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
