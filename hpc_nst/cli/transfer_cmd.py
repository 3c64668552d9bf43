"""``hpc-nst transfer CONTENT STYLE -o OUT.wav``: one pair, end to end."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hpc_nst import __version__
from hpc_nst.audio.io import is_silent, load_audio, write_audio
from hpc_nst.config import load_job, parse_overrides
from hpc_nst.fsutil import atomic_write_text, unwritable_reason

if TYPE_CHECKING:
    from hpc_nst.config import JobConfig
    from hpc_nst.engine.transfer import TransferResult

log = logging.getLogger(__name__)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """``--job`` and ``--set``, shared by every command that runs the engine."""
    parser.add_argument("--job", type=Path, metavar="FILE|NAME",
                        help="job preset: a TOML file, or a shipped preset's name from any "
                        "folder (paper, eq, layered, layered-post, sampler, ...: jobs/*.toml); "
                        "default: paper")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a job key (dotted for nested keys, or a short name like iterations; "
        "a loss term's weight: <term>_weight=W, a plugin's term once its module is named in "
        "HPC_NST_PLUGINS: docs/terms.md)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    from hpc_nst.cli.args import device_arg

    p = sub.add_parser("transfer", help="style-transfer one content/style pair")
    p.add_argument("content", type=Path, help="content audio (any format soundfile reads)")
    p.add_argument("style", type=Path, help="style audio")
    p.add_argument("-o", "--output", type=Path, required=True, help="output audio (.wav/.flac)")
    add_job_arguments(p)
    p.add_argument("--device", default="auto", type=device_arg, metavar="auto|cpu|cuda[:N]",
                   help="cpu, cuda, cuda:N or auto (default); the methods that do not "
                   "optimise run on the CPU")
    p.add_argument("--figure", type=Path, help="write the four-panel spectrogram figure here")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output (and its .json) and figure")
    p.set_defaults(func=run)


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any computation, outputs that could not be written or would replace
    something: an unknown audio or figure format, an output that is an input, an existing
    file without --overwrite, a folder that cannot be made."""
    import soundfile as sf

    from hpc_nst.errors import UsageError

    audio_types = {f".{k.lower()}" for k in sf.available_formats()
                   if sf.default_subtype(k) is not None}  # (RAW needs a subtype: not offered)
    if args.output.suffix.lower() not in audio_types:
        raise UsageError(f"-o {args.output}: {args.output.suffix or 'no extension'} is not an "
                         "audio format soundfile writes; use .wav or .flac")
    if args.figure is not None:
        from matplotlib.figure import Figure

        kinds = Figure().canvas.get_supported_filetypes()
        if args.figure.suffix.lower().lstrip(".") not in kinds:
            raise UsageError(f"--figure {args.figure}: not an image format matplotlib "
                             "writes; use .png, .svg or .pdf")
    outputs = [("-o", args.output), ("-o", args.output.with_suffix(".json"))]
    outputs += [("--figure", args.figure)] if args.figure is not None else []
    inputs = {p.resolve() for p in (args.content, args.style)}
    for flag, path in outputs:
        if path.resolve() in inputs:
            raise UsageError(f"{flag} {path}: that is an input of this transfer; write the "
                             "output elsewhere")
        if path.is_dir():
            raise UsageError(f"{flag} {path}: is a folder; give a file name")
        if path.exists() and not args.overwrite:
            raise UsageError(f"{flag} {path}: exists; add --overwrite to replace it, or "
                             "choose another name")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{flag} {path}: cannot make its folder ({exc.strerror})") \
                from None
        reason = unwritable_reason(path.parent)
        if reason:
            raise UsageError(f"{flag} {path}: its folder cannot be written to ({reason}); "
                             "choose a writable place (found before the transfer ran)")


def run(args: argparse.Namespace) -> int:
    from hpc_nst.cli.args import warn_unread
    from hpc_nst.engine.device import pick_device
    from hpc_nst.engine.methods import run_method
    from hpc_nst.report.figures import pair_figure

    overrides = parse_overrides(args.overrides)
    cfg = load_job(args.job, overrides)
    warn_unread(cfg, overrides)
    pick_device(args.device)  # a CUDA device this machine lacks: said now, for any method
    check_outputs(args)
    stft = cfg.stft
    log.info("job %s: method %s, digest %s", args.job or "(default)", cfg.method, cfg.digest())
    content = load_audio(args.content, stft.sample_rate, min_samples=stft.win_length)
    style = load_audio(args.style, stft.sample_rate, min_samples=stft.win_length)
    log.info("content %s: %.2f s, style %s: %.2f s (at %d Hz)", args.content,
             len(content) / stft.sample_rate, args.style, len(style) / stft.sample_rate,
             stft.sample_rate)
    for role, path, audio in (("content", args.content, content), ("style", args.style, style)):
        if is_silent(audio):  # it runs (no NaN), but says so
            print(f"hpc-nst transfer: warning: the {role} {path} is silent after mixing to "
                  "mono; the output will not carry anything of it", file=sys.stderr)

    def progress(step: int, total: int, terms: dict[str, float]) -> None:
        parts = " ".join(f"{k}={v:.4g}" for k, v in terms.items())
        print(f"iter {step + 1:>5}/{total}  {parts}", file=sys.stderr, flush=True)

    (result,) = run_method(
        [content], [style], cfg, device=args.device, progress=None if args.quiet else progress
    )
    if result.error:
        print(
            f"hpc-nst transfer: error: {args.content} + {args.style}: {result.error}",
            file=sys.stderr,
        )
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "content": str(args.content),
        "style": str(args.style),
        "output": str(args.output),
        "version": __version__,
        "job": cfg.record(),
        "device": result.device,
        "seed": result.seed,
        "timings": result.timings,
        # (null where no Griffin-Lim ran: a method that does not optimise)
        "spectral_convergence": (result.spectral_convergence
                                 if math.isfinite(result.spectral_convergence) else None),
        "losses": {k: v.tolist() for k, v in result.losses.items()},
    }
    log.info("ran on %s: %s", result.device, ", ".join(
        f"{k} {v:.3g}" for k, v in result.timings.items() if isinstance(v, float)))
    write_audio(args.output, result.audio, stft.sample_rate)  # the result first
    atomic_write_text(args.output.with_suffix(".json"), json.dumps(report, indent=1))
    log.info("wrote %s and %s", args.output, args.output.with_suffix(".json"))
    if args.figure:  # (a method that does not optimise: no initial-noise panel)
        pair_figure({"init": result.init, "content": result.content, "style": result.style,
                     "output": result.output}, args.figure, stft,
                    title=f"{args.content.name} + {args.style.name}",
                    optimised=bool(result.losses))
    if args.device.startswith("cuda") and result.device == "cpu":
        print(f"hpc-nst transfer: note: method {cfg.method} does not optimise and ran on the "
              f"CPU (--device {args.device} is for the optimising methods)", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {args.output} ({len(result.audio) / stft.sample_rate:.2f} s); "
              + summary(result, cfg))
    return 0


def summary(result: TransferResult, cfg: JobConfig) -> str:
    """What the run did, in a line: the final losses, the phase's spectral convergence and
    the time per iteration of an optimisation; the method and its time otherwise."""
    t = result.timings
    seconds = t.get("total_s", sum(v for k, v in t.items() if k.endswith("_s")))
    if not result.losses:
        return f"method {cfg.method}, {seconds:.2f} s on {result.device}"
    final = {k: f"{v[-1]:.4g}" for k, v in result.losses.items()}
    timing = (f"{t['ms_per_iteration']:.1f} ms/iteration" if "ms_per_iteration" in t
              and cfg.optim.iterations >= 1 else f"{seconds:.2f} s")
    return (f"final losses {final}; spectral convergence {result.spectral_convergence:.3f}; "
            f"{timing} on {result.device}")
