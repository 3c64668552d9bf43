"""Modulation term: the style's sub-band envelope dynamics (after McDermott & Simoncelli 2011).

What makes a plucked string a plucked string is not its average spectrum (a static EQ copies
that) but how each band's level moves: attacks, decays, tremolo. Per item, the magnitude goes to
dB (80 dB range below the item's peak, as in the cepstral timbre term) and is averaged into
``bands`` frequency bands equally spaced on the mel scale; each band's envelope has its time
mean removed (so a static gain or EQ changes nothing) and its modulation power is measured in
octave-wide modulation bands from 0.5 Hz up to half the frame rate. The term is the mean squared
difference of ``log(power + 1)`` between the output and the style, per item (0 for equal
dynamics, whatever the lengths: power is normalised by the number of valid frames).

Parameters (``loss.term_params.modulation.<name>``; in TOML a table
``[loss.term_params.modulation]``): ``bands`` (default 16) and ``floor_db`` (default 80).
Weight: ``loss.term_weights.modulation`` (off by default). The band edges assume the paper's
STFT (16 kHz, 10 ms hop): a term sees the loss settings only, not the STFT's.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

import torch

from hpc_nst.config import LossConfig
from hpc_nst.engine.terms.base import Current, TargetInputs, Term, register_term
from hpc_nst.errors import ConfigError
from hpc_nst.losses import style_transfer as L

FRAME_RATE = 100.0  # frames per second at the paper's 10 ms hop (only sets the octave edges)
LOWEST_HZ = 0.5
OCTAVES = max(1, int(math.floor(math.log2((FRAME_RATE / 2) / LOWEST_HZ))))


@functools.lru_cache(maxsize=8)
def mel_bands(n_bins: int, bands: int) -> torch.Tensor:
    """``(bands, n_bins)`` rows averaging the bins of each mel-spaced band (float64, CPU)."""
    mel = 2595.0 * torch.log10(1.0 + torch.linspace(0, 8000, n_bins, dtype=torch.float64) / 700)
    edges = torch.linspace(float(mel[1]), float(mel[-1]) + 1e-9, bands + 1, dtype=torch.float64)
    rows = torch.zeros(bands, n_bins, dtype=torch.float64)
    for b in range(bands):
        sel = (mel >= edges[b]) & (mel < edges[b + 1])
        if not sel.any():  # a band narrower than a bin: take the nearest bin
            sel = torch.zeros(n_bins, dtype=torch.bool)
            sel[int(torch.argmin((mel - edges[b]).abs()))] = True
        rows[b, sel] = 1.0 / float(sel.sum())
    return rows


@functools.lru_cache(maxsize=64)
def _octave_pool(n_fft: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n_fft // 2 + 1, M)``: sums rfft bins into octave bands from LOWEST_HZ up (the top
    one includes the Nyquist frequency); cached per length, device and dtype."""
    return _octave_pool_cpu(n_fft).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=16)
def _mel_rows(n_bins: int, bands: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return mel_bands(n_bins, bands).to(device=device, dtype=dtype)


@functools.lru_cache(maxsize=64)
def _octave_pool_cpu(n_fft: int) -> torch.Tensor:
    freqs = torch.fft.rfftfreq(n_fft, d=1.0 / FRAME_RATE).to(torch.float64)
    edges = LOWEST_HZ * 2.0 ** torch.arange(OCTAVES + 1, dtype=torch.float64)
    pool = torch.zeros(len(freqs), OCTAVES, dtype=torch.float64)
    edges[-1] += 1e-9
    for m in range(OCTAVES):
        pool[(freqs >= edges[m]) & (freqs < edges[m + 1]), m] = 1.0
    return pool


def modulation_stats(log_mag: torch.Tensor, lengths: torch.Tensor, bands: int,
                     floor_db: float) -> torch.Tensor:
    """``log(1 + modulation power)`` per (band, octave): ``(B, F, T)`` -> ``(B, bands, M)``."""
    db = L.floored_db(log_mag, lengths, floor_db)
    rows = _mel_rows(log_mag.shape[-2], bands, log_mag.device, log_mag.dtype)
    # float32 for the FFT (which refuses bfloat16: under optim.precision = "bf16" the einsum
    # comes out bfloat16 on a GPU); a no-op in fp32
    env = torch.einsum("kf,bft->bkt", rows, db).float()  # 0 in padded frames
    n = lengths.clamp_min(1)
    env = env - env.sum(-1, keepdim=True) / n[:, None, None].to(env.dtype)
    # Each item at its own length (not the batch's padded one), so its statistics do not
    # depend on its companions; items of one length share one FFT. Parseval: /(n * n) makes
    # the summed power the mean square.
    power = env.new_empty(env.shape[0], bands, OCTAVES)
    for n_i in torch.unique(n).tolist():
        idx = torch.nonzero(n == n_i).flatten()
        spectrum = torch.fft.rfft(env[idx, :, :n_i], dim=-1).abs().pow(2) / float(n_i * n_i)
        # (autocast would make this product bfloat16 under optim.precision = "bf16")
        power[idx] = (spectrum @ _octave_pool(int(n_i), log_mag.device, env.dtype)).to(
            power.dtype)
    return torch.log1p(power)


@register_term
class ModulationTerm(Term):
    name = "modulation"
    params = {"bands": 16.0, "floor_db": 80.0}

    def validate(self, loss: LossConfig) -> None:
        bands = self.param(loss, "bands")
        if bands != int(bands) or not 1 <= bands <= 128:
            raise ConfigError(f"loss.term_params.modulation.bands: must be an integer in "
                              f"[1, 128], got {bands}")
        if not 10 <= self.param(loss, "floor_db") <= 160:
            raise ConfigError("loss.term_params.modulation.floor_db: must be in [10, 160] dB")

    def _stats(self, log_mag: torch.Tensor, lengths: torch.Tensor,
               loss: LossConfig) -> torch.Tensor:
        return modulation_stats(log_mag, lengths, int(self.param(loss, "bands")),
                                self.param(loss, "floor_db"))

    def targets(self, inputs: TargetInputs) -> dict[str, torch.Tensor]:
        return {"stats": self._stats(inputs.style, inputs.style_lengths, inputs.loss)}

    def value(self, current: Current, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        own = self._stats(current.x, current.lengths, current.loss)
        return (own - targets["stats"]).pow(2).flatten(1).mean(-1)
