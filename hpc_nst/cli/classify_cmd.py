"""``hpc-nst classify AUDIO ...``: top-5 instruments per file (per 2.56 s window and overall)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from hpc_nst.cli.args import device_arg

    p = sub.add_parser(
        "classify",
        help="name the instrument in audio files with a trained classifier",
        description="Print the top-K classes with probabilities for each file. Files longer "
        "than 2.56 s are classified per 2.56 s window and overall (length-weighted mean).",
    )
    p.add_argument("audio", nargs="+", type=Path, help="audio files (any format soundfile reads)")
    p.add_argument("--model", type=Path,
                   help="checkpoint (default, or the name classifier: the one shipped with the "
                   "package)")
    p.add_argument("--top", type=int, default=5, help="classes to show (default 5)")
    p.add_argument("--device", default="cpu", type=device_arg, metavar="cpu|auto|cuda[:N]",
                   help="cpu (default), cuda, cuda:N or auto")
    p.add_argument("--json", action="store_true", help="one JSON object per file instead")
    p.set_defaults(func=run)


def _fmt(ranked: list[tuple[str, float]]) -> str:
    return "  ".join(f"{name} {prob:.1%}" for name, prob in ranked)


def run(args: argparse.Namespace) -> int:
    from hpc_nst.audio.io import SILENCE_PEAK, AudioError, is_silent, load_audio
    from hpc_nst.cli import UserError
    from hpc_nst.config import STFTConfig
    from hpc_nst.engine.device import pick_device
    from hpc_nst.models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
    from hpc_nst.train.classify import classify_audio, top_k

    if args.top < 1:
        raise UserError(f"--top must be >= 1, got {args.top}")
    stft = STFTConfig()
    if args.model is not None and str(args.model) in ("classifier", "default") \
            and not args.model.is_file():  # (a file of that name is that file)
        args.model = None  # the names --set model=... takes for the shipped classifier
    path = args.model or DEFAULT_CHECKPOINT
    if args.model is None and not DEFAULT_CHECKPOINT.is_file():
        raise UserError("no trained classifier is shipped in this build; pass --model")
    model, meta = load_checkpoint(path, stft)
    device = pick_device(args.device)
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != model.n_classes:
        raise UserError(f"{path}: checkpoint has no class names (not a trained classifier)")
    failed = 0
    for file in args.audio:
        try:
            audio = load_audio(file, stft.sample_rate, min_samples=stft.win_length)
        except AudioError as exc:  # (its message names the file)
            print(json.dumps({"file": str(file), "error": str(exc)}) if args.json
                  else f"error: {exc}", file=sys.stdout if args.json else sys.stderr)
            failed += 1
            continue
        if is_silent(audio):  # the classifier would still name an instrument
            print(json.dumps({"file": str(file), "silent": True,
                              "duration_s": round(len(audio) / stft.sample_rate, 3),
                              "top": [], "windows": []}) if args.json
                  else f"{file}: silent (no sample above {SILENCE_PEAK:g}): no instrument")
            continue
        result = classify_audio(model, audio, stft, device, skip_silent=True)
        overall = top_k(result.overall, classes, args.top)
        if args.json:
            print(json.dumps({
                "file": str(file), "duration_s": round(result.duration_s, 3),
                "top": [{"label": n, "prob": round(p, 5)} for n, p in overall],
                "windows": [
                    {"start_s": round(s, 2), "end_s": round(e, 2),
                     "top": [{"label": n, "prob": round(q, 5)}
                             for n, q in top_k(p, classes, args.top)]}
                    for s, e, p in result.windows
                ],
            }))
            continue
        print(f"{file} ({result.duration_s:.2f} s)")
        if len(result.windows) > 1:
            for s, e, p in result.windows:
                print(f"  {s:7.2f}-{e:7.2f} s  {_fmt(top_k(p, classes, args.top))}")
        print(f"  overall          {_fmt(overall)}")
    if failed:
        raise UserError(f"{failed} of {len(args.audio)} file(s) could not be read")
    return 0
