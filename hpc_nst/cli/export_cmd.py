"""``hpc-nst export STORE -o DIR``: each done pair's output audio as ``DIR/<pair_id>.<format>``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the output audio of a batch store to files")
    p.add_argument("store", type=Path, help="the Zarr store written by hpc-nst run")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR",
                   help="folder for <pair_id>.<format> files")
    p.add_argument("--format", choices=("wav", "flac"), default="wav", help="default: wav")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing files (default: keep them and say so)")
    p.set_defaults(func=run)


def export(store: Path, out_dir: Path, fmt: str = "wav",
           overwrite: bool = False) -> dict[str, int]:
    """Write every done pair's audio; returns counts (written, kept, not_done)."""
    import numpy as np

    from hpc_nst.audio.io import write_audio
    from hpc_nst.batch.store import DONE, open_root, read_column

    root = open_root(store)
    status, ids = read_column(root, "status"), read_column(root, "pair")
    samples = read_column(root, "samples")
    audio = root["audio"]
    rate = int(root.attrs["sample_rate"])
    step = int(root.attrs["layout"]["pairs_per_task"])
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {"written": 0, "kept": 0, "not_done": int((status != DONE).sum())}
    for start in range(0, len(ids), step):  # one shard at a time
        stop = min(start + step, len(ids))
        todo = []
        for i in range(start, stop):
            if status[i] != DONE:
                continue
            target = out_dir / f"{ids[i]}.{fmt}"
            if target.exists() and not overwrite:
                counts["kept"] += 1
            else:
                todo.append((i, target))
        if not todo:
            continue
        longest = max(int(samples[i]) for i, _ in todo)
        block = np.asarray(audio[start:stop, :longest])
        for i, target in todo:
            write_audio(target, block[i - start, : int(samples[i])], rate)
            counts["written"] += 1
    return counts


def run(args: argparse.Namespace) -> int:
    from hpc_nst.batch.store import StoreError
    from hpc_nst.cli import UserError

    try:
        counts = export(args.store, args.output, args.format, args.overwrite)
    except StoreError as exc:
        raise UserError(str(exc)) from None
    print(f"wrote {counts['written']} file(s) to {args.output}"
          + (f"; kept {counts['kept']} existing (use --overwrite to replace)"
             if counts["kept"] else "")
          + (f"; {counts['not_done']} pair(s) not done (see hpc-nst status)"
             if counts["not_done"] else ""))
    return 0
