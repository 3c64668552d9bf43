"""``hpc-nst train MANIFEST -o CHECKPOINT``: train the instrument classifier."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpc_nst.cli.args import device_arg
from hpc_nst.cli.run_cmd import count_arg

if TYPE_CHECKING:
    import torch

    from hpc_nst.config import STFTConfig
    from hpc_nst.train.cache import SpecCache


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the instrument classifier (feature network) on labelled audio",
        description="Train AudioAlexNet on a CSV manifest (path,label[,split,pitch]), a "
        "manifest from 'hpc-nst dataset render-gm', an NSynth folder (examples.json + "
        "audio/) or a spectrogram pack (--export-pack: train where the audio is not). Writes "
        "the best checkpoint (by validation top-1) to -o, a resumable state "
        "to <CHECKPOINT>.resume.pt and a report to <stem>.report.json.",
    )
    p.add_argument("manifest", type=Path,
                   help="CSV manifest, NSynth folder, examples.json or spectrogram pack folder")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", type=Path, help="checkpoint to write")
    out.add_argument("--export-pack", type=Path, metavar="DIR",
                     help="write the data as a compressed spectrogram pack to DIR and exit")
    out.add_argument("--evaluate", type=Path, metavar="CHECKPOINT",
                     help="evaluate CHECKPOINT on the data's held-out split (see --split), "
                     "print top-1/top-5 and write <stem>.eval.json beside it")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="split --evaluate uses (default test; the result goes to "
                   "<stem>.eval.json, for val and train <stem>.eval-<split>.json)")
    p.add_argument("--epochs", type=int, help="total epochs (default 10, or the resumed run's)")
    p.add_argument("--width", type=int,
                   help="network width (default 16, or the --init-from checkpoint's)")
    p.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--crop", type=float, default=1.28,
                   help="training crop length in seconds (default 1.28; at most 2.57, the "
                        "clips' length)")
    p.add_argument("--seed", type=count_arg(0), default=0, help="seed (default 0)")
    p.add_argument("--device", default="auto", type=device_arg, metavar="auto|cpu|cuda[:N]",
                   help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--resume", type=Path, metavar="CHECKPOINT",
                   help="continue an interrupted run (its checkpoint or .resume.pt)")
    p.add_argument("--init-from", type=Path, metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's weights (its width is used)")
    p.add_argument("--cache-dir", type=Path,
                   help="spectrogram cache folder (default: .hpc_nst_cache beside the data)")
    p.add_argument("--label-key", default="instrument_family_str",
                   help="NSynth examples.json key used as label (default instrument_family_str)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run where -o already has one (its checkpoint and resume "
                        "state are replaced; --resume continues it instead)")
    p.set_defaults(func=run)


def check_output(args: argparse.Namespace) -> None:
    """Refuse, before any work, a ``-o`` that cannot take a checkpoint, or that holds a run
    (its checkpoint or resume state) which a new run would replace without --overwrite."""
    from hpc_nst.cli import UserError
    from hpc_nst.fsutil import check_output_file
    from hpc_nst.train.trainer import report_path, resume_path

    out = args.output
    if out is None:
        return
    check_output_file(out, "-o", "the checkpoint's file name", "model.pt")
    there = [p for p in (out, resume_path(out)) if p.is_file()]
    state = None if args.resume is None else (
        args.resume if args.resume.name.endswith(".resume.pt") else resume_path(args.resume))
    resuming_it = state is not None and state.resolve() == resume_path(out).resolve()
    if there and not resuming_it and not args.overwrite:
        hint = (f"start again with --overwrite (fine-tuning from {args.init_from} in its "
                "place)" if args.init_from is not None else
                f"continue it with --resume {out}, or start again with --overwrite")
        raise UserError(f"-o {out}: a training run is there ({', '.join(map(str, there))}); "
                        f"{hint}")
    if there and args.overwrite and args.resume is None:
        for p in (out, resume_path(out), report_path(out)):  # nothing of the old run is left
            p.unlink(missing_ok=True)


def _command(args: argparse.Namespace, run: dict[str, Any], crop_s: float) -> str:
    """The equivalent command line (recorded in the checkpoint) of the run's settings
    ``run`` (a resumed run's own, not this command's defaults)."""
    words = ["hpc-nst", "train", str(args.manifest), "-o", str(args.output),
             "--epochs", str(run["epochs"]), "--width", str(run["width"]),
             "--batch-size", str(run["batch_size"]), "--lr", str(run["lr"]),
             "--crop", f"{crop_s:g}", "--seed", str(run["seed"])]
    if args.init_from is not None:
        words += ["--init-from", str(args.init_from)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    import torch

    from hpc_nst.cli import UserError
    from hpc_nst.config import STFTConfig
    from hpc_nst.engine.device import TransferError, pick_device
    from hpc_nst.models.checkpoint import read_checkpoint
    from hpc_nst.train.cache import build_cache
    from hpc_nst.train.pack import is_pack, read_pack, write_pack
    from hpc_nst.train.sources import data_hash, load_examples
    from hpc_nst.train.trainer import (
        TrainConfig,
        load_state,
        print_progress,
        train,
    )

    for name in ("epochs", "width", "batch_size", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if not (math.isfinite(args.crop) and math.isfinite(args.lr)) or args.crop <= 0 \
            or args.lr <= 0:
        raise UserError(f"--crop and --lr must be positive numbers (got {args.crop:g} and "
                        f"{args.lr:g})")
    from hpc_nst.train.cache import CLIP_FRAMES

    longest = CLIP_FRAMES * STFTConfig().hop_length / STFTConfig().sample_rate
    if args.crop > longest + 1e-9:
        raise UserError(f"--crop {args.crop:g}: the training clips are cut to {longest:g} s "
                        f"when read, so a crop can be at most {longest:g} s (a longer one "
                        "would be padding)")
    check_output(args)
    if args.evaluate is not None and not args.evaluate.is_file():  # before the data is read
        raise UserError(f"--evaluate {args.evaluate}: checkpoint not found")
    if args.threads:
        torch.set_num_threads(args.threads)
    say = None if args.quiet else print_progress
    stft = STFTConfig()
    try:
        device = pick_device(args.device)
    except (TransferError, RuntimeError) as exc:
        raise UserError(str(exc)) from None
    if is_pack(args.manifest):
        if args.export_pack:
            raise UserError(f"{args.manifest} is already a spectrogram pack")
        pack = read_pack(args.manifest, dither=not args.evaluate)  # score what was stored
        labels, splits, cache, stft = pack.labels, pack.splits, pack.cache, pack.stft
        source, digest = f"{pack.source} (pack {args.manifest})", pack.data_hash
        if say:
            say(f"{len(labels)} examples from the pack {args.manifest}")
    else:
        examples = load_examples(args.manifest, args.label_key)
        root = args.manifest if args.manifest.is_dir() else args.manifest.parent
        cache_dir = args.cache_dir or root / ".hpc_nst_cache"
        if say:
            say(f"{len(examples)} examples from {args.manifest}")
        cache = build_cache(examples, cache_dir, stft, progress=say)
        labels, splits = [ex.label for ex in examples], [ex.split for ex in examples]
        source, digest = str(args.manifest), data_hash(examples, root)
    if args.evaluate:
        return _evaluate(args, labels, splits, cache, stft, device, say)
    if args.export_pack:
        meta = write_pack(cache, labels, splits, stft, digest, args.export_pack,
                          source=source, workers=min(4, os.cpu_count() or 1), progress=say)
        if say:
            say(f"wrote {meta}")
        return 0
    width = args.width or 16
    if args.init_from is not None:
        if args.resume is not None:
            raise UserError("--init-from starts a new run; --resume continues one: pick one")
        width = int(read_checkpoint(args.init_from)["arch"]["width"])
        if args.width is not None and args.width != width:
            raise UserError(f"--width {args.width}, but {args.init_from} has width {width}")
    cfg = TrainConfig(
        epochs=args.epochs or 10, width=width, batch_size=args.batch_size, lr=args.lr,
        crop_frames=max(8, int(round(args.crop * stft.sample_rate / stft.hop_length))),
        seed=args.seed,
    )
    if args.resume is not None:
        resumed = load_state(args.resume)["config"]
        if args.width is not None and args.width != int(resumed.get("width", args.width)):
            raise UserError(f"--width {args.width}, but the run of {args.resume} has width "
                            f"{resumed['width']}: a resumed run keeps its width (leave "
                            "--width out)")
        if args.epochs is None:
            cfg.epochs = int(resumed["epochs"])
    run_cfg = dataclasses.asdict(cfg) | ({k: resumed[k] for k in (
        "width", "batch_size", "lr", "seed", "crop_frames") if k in resumed}
        if args.resume is not None else {})
    command = _command(args, run_cfg, run_cfg["crop_frames"] * stft.hop_length
                       / stft.sample_rate)
    started = time.time()
    try:
        train(
            labels, splits, cache, args.output, cfg, stft, digest, device,
            resume=args.resume, progress=say, init_from=args.init_from,
            extra_meta={"source": source, "command": command},
        )
    except KeyboardInterrupt:
        from hpc_nst.train.trainer import resume_path

        state = resume_path(args.output)
        if state.is_file() and state.stat().st_mtime >= started:
            print(f"hpc-nst train: the last finished epoch is saved; continue with the same "
                  f"command and --resume {args.output}", file=sys.stderr)
        else:
            print("hpc-nst train: stopped before an epoch of this run finished: nothing of it "
                  "is saved", file=sys.stderr)
        raise
    return 0


def _evaluate(
    args: argparse.Namespace,
    labels: list[str],
    splits: list[str],
    cache: SpecCache,
    stft: STFTConfig,
    device: torch.device,
    say: Callable[[str], None] | None,
) -> int:
    """``--evaluate``: the checkpoint's accuracy on one split of this data."""
    import json

    from hpc_nst.cli import UserError
    from hpc_nst.fsutil import atomic_write
    from hpc_nst.models.checkpoint import CheckpointError, load_checkpoint
    from hpc_nst.train.evaluate import evaluate_checkpoint

    try:
        model, meta = load_checkpoint(args.evaluate, stft)
        result = evaluate_checkpoint(model, list(meta.get("classes") or []), labels, splits,
                                     cache, device, args.split)
    except (CheckpointError, ValueError) as exc:
        text = str(exc)  # (a checkpoint error names the file already)
        raise UserError(text if str(args.evaluate) in text else f"{args.evaluate}: {text}") \
            from None
    result = {"checkpoint": str(args.evaluate), "data": str(args.manifest), **result}
    suffix = ".eval.json" if args.split == "test" else f".eval-{args.split}.json"
    out = args.evaluate.with_name(args.evaluate.stem + suffix)  # (one file per split)
    try:
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
    except OSError as exc:  # e.g. the shipped checkpoint in a read-only install
        out = Path.cwd() / out.name
        atomic_write(out, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
        if say:
            say(f"could not write beside the checkpoint ({exc.strerror})")
    print(f"{args.evaluate} on {args.manifest} ({args.split}, {result['n']} clips): "
          f"top-1 {result['top1']:.1%}  top-5 {result['top5']:.1%}  loss {result['loss']:.4f}")
    if say:
        say(f"wrote {out}")
    return 0
