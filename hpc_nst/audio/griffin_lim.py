"""Batched (fast) Griffin-Lim phase reconstruction on torch.

With ``momentum`` > 0 this is the fast Griffin-Lim of Perraudin, Balazs & Sondergaard (2013):
the phase estimate is extrapolated from the previous iterate, which converges much faster than
plain Griffin-Lim (``momentum=0``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from hpc_nst.audio.spectrogram import complex_stft, inverse_stft
from hpc_nst.config import STFTConfig


@dataclass(frozen=True)
class GriffinLimResult:
    """Reconstructed audio ``(B, samples)`` and each item's spectral convergence."""

    audio: torch.Tensor
    spectral_convergence: torch.Tensor


def spectral_convergence(
    magnitude: torch.Tensor, audio: torch.Tensor, stft: STFTConfig
) -> torch.Tensor:
    """``||S - |STFT(audio)||| / ||S||`` per item (Frobenius norms over bins and frames)."""
    rebuilt = complex_stft(audio, stft).abs()
    frames = min(rebuilt.shape[-1], magnitude.shape[-1])
    diff = (magnitude[..., :frames] - rebuilt[..., :frames]).flatten(-2).norm(dim=-1)
    ref = magnitude.flatten(-2).norm(dim=-1)
    return diff / ref.clamp_min(1e-12)


def griffin_lim(
    magnitude: torch.Tensor,
    stft: STFTConfig,
    length: int,
    iterations: int = 100,
    momentum: float = 0.99,
    seed: int | Sequence[int] = 0,
) -> GriffinLimResult:
    """Estimate audio of ``length`` samples whose STFT magnitude is ``magnitude`` ``(B, F, T)``.

    The initial phase is uniformly random, drawn on the CPU (so results do not depend on the
    device's random generator): from ``seed`` for the whole batch, or, with one seed per item,
    each item's phase from its own seed (so an item's result does not depend on its batch).
    """
    if isinstance(seed, int):
        gen = torch.Generator().manual_seed(seed)
        phase = torch.rand(magnitude.shape, generator=gen, dtype=magnitude.dtype)
    else:
        if len(seed) != magnitude.shape[0]:
            raise ValueError(f"griffin_lim: {len(seed)} seeds for {magnitude.shape[0]} items")
        phase = torch.stack([
            torch.rand(magnitude.shape[1:], generator=torch.Generator().manual_seed(int(s)),
                       dtype=magnitude.dtype) for s in seed])
    phase = phase * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(phase), phase).to(magnitude.device)
    previous = torch.zeros_like(angles)
    alpha = momentum / (1.0 + momentum)
    for _ in range(iterations):
        audio = inverse_stft(magnitude * angles, stft, length)
        rebuilt = complex_stft(audio, stft)
        angles = rebuilt - alpha * previous if momentum > 0 else rebuilt
        angles = angles / angles.abs().clamp_min(1e-16)
        previous = rebuilt
    audio = inverse_stft(magnitude * angles, stft, length)
    return GriffinLimResult(audio, spectral_convergence(magnitude, audio, stft))
