"""Every method behind one call, so baselines run through the same batch engine and store.

- ``nst``: the paper's method (:func:`hpc_nst.engine.transfer.transfer_batch`);
- ``content-copy`` / ``style-copy``: the output is the content / the style input;
- ``eq``: a static equaliser, the content's STFT times the ratio of the style's to the
  content's time-averaged magnitude spectrum, content phase kept (the baseline the frequency
  envelope term alone pulls towards);
- ``ulyanov``: Ulyanov & Lebedev (2016), :mod:`hpc_nst.engine.ulyanov`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch

from hpc_nst.audio.spectrogram import complex_stft, inverse_stft, log_magnitude
from hpc_nst.config import JobConfig
from hpc_nst.engine.device import pick_device
from hpc_nst.engine.transfer import Progress, TransferResult, limit_peak, transfer_batch


def _passthrough(
    audio: np.ndarray,
    cfg: JobConfig,
    seed: int,
    content: np.ndarray,
    style: np.ndarray,
    started: float,
) -> TransferResult:
    spec = log_magnitude(torch.as_tensor(audio), cfg.stft).numpy()
    return TransferResult(
        audio=np.asarray(audio, dtype=np.float32),
        output=spec,
        init=spec,
        content=log_magnitude(torch.as_tensor(content), cfg.stft).numpy(),
        style=log_magnitude(torch.as_tensor(style), cfg.stft).numpy(),
        losses={},
        spectral_convergence=0.0,
        seed=seed,
        device="cpu",
        timings={"total_s": time.perf_counter() - started},
    )


def static_eq(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    """Content audio filtered by the style/content ratio of time-averaged magnitude spectra."""
    c = complex_stft(torch.as_tensor(content, dtype=torch.float32), cfg.stft)
    s = complex_stft(torch.as_tensor(style, dtype=torch.float32), cfg.stft)
    c_mean, s_mean = c.abs().mean(-1), s.abs().mean(-1)
    floor = 1e-6 * float(max(c_mean.max(), s_mean.max(), 1e-12))
    gain = s_mean / c_mean.clamp_min(floor)
    gain = torch.where(c_mean > floor, gain, torch.zeros_like(gain))
    out = inverse_stft(c * gain[:, None], cfg.stft, len(content)).numpy().astype(np.float32)
    return limit_peak(out, 0.9)


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
    if cfg.method == "nst":
        return transfer_batch(contents, styles, cfg, seeds=seeds, device=device, progress=progress)
    if cfg.method == "ulyanov":
        from hpc_nst.engine.ulyanov import ulyanov_batch

        return ulyanov_batch(
            contents, styles, cfg, seeds=seeds, device=pick_device(device), progress=progress
        )
    out = []
    for c, s, seed in zip(contents, styles, seeds):
        started = time.perf_counter()
        if cfg.method == "content-copy":
            audio = c
        elif cfg.method == "style-copy":
            audio = s
        else:
            audio = static_eq(c, s, cfg)
        out.append(_passthrough(audio, cfg, seed, c, s, started))
    return out
