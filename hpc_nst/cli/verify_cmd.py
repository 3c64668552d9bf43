"""``hpc-nst verify STORE [--repair]``: every done pair's data checked against its checksum."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="check a store's done pairs against their checksums (after a crash)",
        description="Read every done pair's audio, spectrograms and loss curves and compare "
                    "them with the checksums written with them; report truncated, corrupted or "
                    "missing chunks, missing arrays, inconsistent lengths and pairs marked done "
                    "without data. Exit code 0 when everything verifies (with --repair: also "
                    "once the bad pairs are reset), 1 otherwise, 2 when the store cannot be "
                    "read.")
    p.add_argument("store", type=Path)
    p.add_argument("--repair", action="store_true",
                   help="reset the pairs that fail to pending: the next hpc-nst run redoes them")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from hpc_nst.batch.store import require_writable
    from hpc_nst.batch.verify import repair, verify_store
    from hpc_nst.errors import UsageError

    if not args.store.exists():
        raise UsageError(f"{args.store}: store not found")
    if not any((args.store / part / "zarr.json").is_file() for part in (".", "status")):
        # (a store whose root metadata is lost still has its arrays: verified as damaged)
        raise UsageError(f"{args.store}: not a Zarr store (no zarr.json); give the folder "
                         "that hpc-nst run wrote (-o)")
    if args.repair:  # before reading every chunk, not after
        require_writable(args.store)
    res = verify_store(args.store)
    if args.json:
        print(json.dumps({"store": str(res.store), "ok": res.ok, "done": res.done,
                          # "checked": verified by checksum (kept for earlier readers)
                          "checked": res.checked, "verified": res.checked,
                          "bad_count": len(res.bad), "unchecked": res.unchecked,
                          "store_problems": res.store_problems,
                          "damaged_records": {n: [min(r), max(r)] for n, r in res.broken.items()},
                          "bad": {res.ids[i]: p for i, p in res.bad.items()},
                          "unwritable": [res.ids[i] for i in res.unwritable]}, indent=1))
    else:
        if res.store_problems and not (res.done or res.bad):
            print(f"{res.store}: its pairs were not checked: the store problems below come "
                  "first (restore the store, or rerun the manifest into a new store)")
        else:
            print(f"{res.store}: {res.done} done pair(s): {res.checked} verified by checksum"
                  + (f", {res.unchecked} without a checksum (written by an earlier release; "
                     "readable and non-empty)" if res.unchecked else "")
                  + f", {len(res.bad)} bad")
        for problem in res.store_problems:
            print(f"  store: {problem}")
        for name, rows in res.broken.items():
            print(f"  store: per-pair array {name!r} rows {min(rows)}..{max(rows)} do not "
                  "decode (a damaged chunk file): --repair writes them again, and the done "
                  "pairs among them are computed again")
        for i, problem in sorted(res.bad.items()):
            print(f"  {res.ids[i] if i < len(res.ids) else i}: {problem}")
        for i in res.unwritable:
            print(f"  {res.ids[i]}: failed, as its shard is damaged (no rerun can write it): "
                  "--repair rewrites the shard")
    if res.store_problems:
        return 1
    if (res.bad or res.broken or res.unwritable) and args.repair:
        n = repair(res)
        where = sys.stderr if args.json else sys.stdout
        if res.broken:
            print("wrote again the damaged chunks of "
                  + ", ".join(repr(name) for name in res.broken), file=where)
        print(f"reset {n} pair(s) to pending: rerun the same hpc-nst run command to redo them",
              file=where)
        if res.unwritable:
            print(f"rewrote the damaged shard(s) of {len(res.unwritable)} failed pair(s): rerun "
                  "with --retry-failed to compute them", file=where)
        return 0
    if res.bad or res.broken or res.unwritable:
        print("rerun with --repair to reset them to pending (and rewrite damaged shards)",
              file=sys.stderr if args.json else sys.stdout)
        return 1
    return 0
