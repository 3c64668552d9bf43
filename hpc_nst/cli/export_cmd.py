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
    from hpc_nst.batch import store as st
    from hpc_nst.batch.reader import iter_pairs, store_info

    info = store_info(store)
    root = st.open_root(info.path)
    ids, done = st.read_column(root, "pair"), root["status"][:] == st.DONE
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [i for i in np.flatnonzero(done)
            if overwrite or not (out_dir / f"{ids[i]}.{fmt}").exists()]
    counts = {"written": 0, "kept": int(done.sum()) - len(todo),
              "not_done": int((~done).sum())}
    # Only the shards holding pairs to write are read (bounded memory: a few at a time).
    for pair in iter_pairs(info, with_audio=True, only=todo, with_losses=False):
        if pair.audio is not None:
            write_audio(out_dir / f"{pair.pair_id}.{fmt}", pair.audio, info.sample_rate)
            counts["written"] += 1
    return counts


def run(args: argparse.Namespace) -> int:

    counts = export(args.store, args.output, args.format, args.overwrite)
    print(f"wrote {counts['written']} file(s) to {args.output}"
          + (f"; kept {counts['kept']} existing (use --overwrite to replace)"
             if counts["kept"] else "")
          + (f"; {counts['not_done']} pair(s) not done (see hpc-nst status)"
             if counts["not_done"] else ""))
    return 0
