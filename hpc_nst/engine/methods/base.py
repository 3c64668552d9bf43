"""What a method is, and the one call that runs any of them.

A method turns a batch of (content, style) audio pairs into one
:class:`~hpc_nst.engine.transfer.TransferResult` per pair. Each lives in its own module of this
package and registers a :class:`Method` with :func:`register_method`; ``run_method`` looks the
job's method up in the registry (an unknown name is an error listing the valid ones).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from hpc_nst.audio.io import is_silent
from hpc_nst.audio.spectrogram import log_magnitude
from hpc_nst.config import JobConfig
from hpc_nst.engine.transfer import Progress, TransferResult
from hpc_nst.errors import TransferError
from hpc_nst.registry import METHODS

#: ``run(contents, styles, cfg, seeds=..., device=..., progress=...) -> results``
MethodFn = Callable[..., list[TransferResult]]


@dataclass(frozen=True)
class Method:
    """A registered method: its name, what it does in one line, how to run it, and the loss
    curves it records for a job (the store's ``term`` axis)."""

    name: str
    summary: str
    run: MethodFn
    loss_terms: Callable[[JobConfig], tuple[str, ...]] = lambda cfg: ()
    #: The one ``stft.sample_rate`` the method works at (None: any); checked with the job.
    sample_rate: int | None = None


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to the registry under ``method.name``."""
    return METHODS.register(method.name, method, replace=replace)


def get_method(name: str) -> Method:
    """The registered method called ``name`` (a ConfigError listing the choices if unknown)."""
    return METHODS.get(name, "method")


def passthrough_result(audio: np.ndarray, cfg: JobConfig, seed: int, content: np.ndarray,
                       style: np.ndarray, started: float) -> TransferResult:
    """A result whose output is ``audio`` as it is (methods that do not optimise). The time
    since ``started`` is the method's whole computation: it is recorded as ``optimise_s`` (the
    timing slot of a method's main work), so runtime and device-hours count it."""
    elapsed = time.perf_counter() - started
    spec = log_magnitude(torch.as_tensor(audio), cfg.stft).numpy()
    return TransferResult(
        audio=np.asarray(audio, dtype=np.float32),
        output=spec,
        init=spec,
        content=log_magnitude(torch.as_tensor(content), cfg.stft).numpy(),
        style=log_magnitude(torch.as_tensor(style), cfg.stft).numpy(),
        losses={},
        spectral_convergence=math.nan,  # no Griffin-Lim ran (it read 0: "consistent")
        seed=seed,
        device="cpu",
        timings={"total_s": elapsed, "optimise_s": elapsed},
    )


def per_pair_method(name: str, summary: str,
                    transform: Callable[[np.ndarray, np.ndarray, JobConfig], np.ndarray],
                    sample_rate: int | None = None, *, replace: bool = False) -> Method:
    """Register a method without optimisation: ``transform(content, style, cfg) -> audio``
    applied to each pair alone (timed per pair, no loss curves); ``cfg.optim.seed`` is the
    pair's seed; ``sample_rate``: the one rate it works at (None: any); ``replace``: take the
    place of a registered method of that name (a plugin's own ``eq``, say)."""

    def run(contents, styles, cfg, *, seeds, device=None, progress=None):  # noqa: ANN001, ANN202
        out = []
        for c, s, seed in zip(contents, styles, seeds):
            started = time.perf_counter()
            pair_cfg = cfg if cfg.optim.seed == seed else cfg.with_seed(seed)  # its own seed
            audio = transform(c, s, pair_cfg)
            if is_silent(audio) and not is_silent(c) and not is_silent(s):
                # (never a silent output stored as done; a silent style may give one)
                raise TransferError(
                    f"method {name} made silence of a content that is not silent (for the "
                    "note-based methods: no pitched note was found in the content, e.g. "
                    "noise or percussion); choose a job that needs no notes for it: --job eq "
                    "or --job paper")
            out.append(passthrough_result(audio, cfg, seed, c, s, started))
        return out

    return register_method(Method(name, summary, run, sample_rate=sample_rate),
                           replace=replace)


#: Job sections that a method without optimisation never reads (but optim.seed, which it does).
UNREAD_SECTIONS = ("optim", "loss", "griffin_lim", "model")


def optimises(cfg: JobConfig) -> bool:
    """Whether the job's method optimises (records loss curves, iterates, runs Griffin-Lim)."""
    return bool(get_method(cfg.method).loss_terms(cfg))


def unread_overrides(cfg: JobConfig, keys: Sequence[str]) -> list[str]:
    """The override ``keys`` (dotted or short names) that the job's method never reads: the
    optimisation's, for a method that does not optimise. They change the job's digest only."""
    from hpc_nst.config import ALIASES

    if optimises(cfg):
        return []
    unread = []
    for key in keys:
        full = ALIASES.get(key, f"loss.{key}" if "." not in key and key.endswith("_weight")
                           else key)  # (a term's <term>_weight short name)
        if full.split(".")[0] in UNREAD_SECTIONS and full != "optim.seed":
            unread.append(key)
    return unread


def run_method(
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    cfg: JobConfig,
    *,
    seeds: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> list[TransferResult]:
    """Run ``cfg.method`` on each pair; returns one result per pair."""
    seeds = list(seeds) if seeds is not None else [cfg.optim.seed] * len(contents)
    return get_method(cfg.method).run(contents, styles, cfg, seeds=seeds, device=device,
                                      progress=progress)
