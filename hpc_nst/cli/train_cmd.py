"""``hpc-nst train MANIFEST -o CHECKPOINT``: train the instrument classifier."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the instrument classifier (feature network) on labelled audio",
        description="Train AudioAlexNet on a CSV manifest (path,label[,split,pitch]), a "
        "manifest from 'hpc-nst dataset render-gm', or an NSynth folder (examples.json + "
        "audio/). Writes the best checkpoint (by validation top-1) to -o, a resumable state "
        "to <CHECKPOINT>.resume.pt and a report to <stem>.report.json.",
    )
    p.add_argument("manifest", type=Path, help="CSV manifest, NSynth folder or examples.json")
    p.add_argument("-o", "--output", type=Path, required=True, help="checkpoint to write")
    p.add_argument("--epochs", type=int, help="total epochs (default 10, or the resumed run's)")
    p.add_argument("--width", type=int, default=16, help="network width (default 16)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--crop", type=float, default=1.28,
                   help="training crop length in seconds (default 1.28)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                   help="continue an interrupted run (its checkpoint or .resume.pt)")
    p.add_argument("--cache-dir", type=Path,
                   help="spectrogram cache folder (default: .hpc_nst_cache beside the data)")
    p.add_argument("--label-key", default="instrument_family_str",
                   help="NSynth examples.json key used as label (default instrument_family_str)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def _command(args: argparse.Namespace, epochs: int) -> str:
    """The equivalent command line (recorded in the checkpoint)."""
    words = ["hpc-nst", "train", str(args.manifest), "-o", str(args.output),
             "--epochs", str(epochs), "--width", str(args.width),
             "--batch-size", str(args.batch_size), "--lr", str(args.lr),
             "--crop", str(args.crop), "--seed", str(args.seed)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    import torch

    from hpc_nst.cli import UserError
    from hpc_nst.config import STFTConfig
    from hpc_nst.engine.device import TransferError, pick_device
    from hpc_nst.train.cache import build_cache
    from hpc_nst.train.sources import ManifestError, data_hash, load_examples
    from hpc_nst.train.trainer import (
        TrainConfig,
        TrainError,
        load_state,
        print_progress,
        train,
    )

    for name in ("epochs", "width", "batch_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.crop <= 0 or args.lr <= 0:
        raise UserError("--crop and --lr must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    say = None if args.quiet else print_progress
    stft = STFTConfig()
    try:
        device = pick_device(args.device)
    except (TransferError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    try:
        examples = load_examples(args.manifest, args.label_key)
        root = args.manifest if args.manifest.is_dir() else args.manifest.parent
        cache_dir = args.cache_dir or root / ".hpc_nst_cache"
        if say:
            say(f"{len(examples)} examples from {args.manifest}")
        cache = build_cache(examples, cache_dir, stft, progress=say)
        cfg = TrainConfig(
            epochs=args.epochs or 10, width=args.width, batch_size=args.batch_size, lr=args.lr,
            crop_frames=max(8, int(round(args.crop * stft.sample_rate / stft.hop_length))),
            seed=args.seed,
        )
        if args.resume is not None and args.epochs is None:
            cfg.epochs = int(load_state(args.resume)["config"]["epochs"])
        train(
            [ex.label for ex in examples], [ex.split for ex in examples], cache, args.output,
            cfg, stft, data_hash(examples, root), device, resume=args.resume, progress=say,
            extra_meta={"source": str(args.manifest), "command": _command(args, cfg.epochs)},
        )
    except (ManifestError, TrainError) as exc:
        raise UserError(str(exc)) from None
    return 0
