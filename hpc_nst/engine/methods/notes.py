"""``notes``: the content's STFT with the style's note envelopes at the content's onsets, then the
style's average spectrum (a static EQ); content phase kept. No optimisation: milliseconds per pair.
See :mod:`hpc_nst.engine.note_envelope`."""

from __future__ import annotations

import numpy as np
import torch

from hpc_nst.audio.spectrogram import complex_stft, inverse_stft
from hpc_nst.config import JobConfig
from hpc_nst.engine.methods.base import per_pair_method
from hpc_nst.engine.note_envelope import envelope_eq_gains, reenvelope_gains
from hpc_nst.engine.transfer import limit_peak


def note_transfer(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    """Content audio with the style's per-band note envelopes and average spectrum."""
    c = complex_stft(torch.as_tensor(content, dtype=torch.float32), cfg.stft).to(torch.complex128)
    s_mag = complex_stft(torch.as_tensor(style, dtype=torch.float32), cfg.stft).abs().double()
    c_mag = c.abs().numpy()
    gain = 10.0 ** (reenvelope_gains(c_mag, s_mag.numpy(), cfg.stft.sample_rate,
                                     cfg.stft.hop_length) / 20.0)
    shaped = c_mag * gain
    gain = gain * envelope_eq_gains(shaped, s_mag.numpy(), cfg.stft.sample_rate)[:, None]
    spec = c * torch.from_numpy(gain)
    out = inverse_stft(spec.to(torch.complex64), cfg.stft, len(content)).numpy()
    return limit_peak(out.astype(np.float32), 0.9)


def envelope_eq(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    """Content audio given the style's smooth spectral envelope (8 mel bands), content phase."""
    c = complex_stft(torch.as_tensor(content, dtype=torch.float32), cfg.stft).to(torch.complex128)
    s_mag = complex_stft(torch.as_tensor(style, dtype=torch.float32), cfg.stft).abs().double()
    gain = envelope_eq_gains(c.abs().numpy(), s_mag.numpy(), cfg.stft.sample_rate)
    out = inverse_stft((c * torch.from_numpy(gain)[:, None]).to(torch.complex64), cfg.stft,
                       len(content)).numpy()
    return limit_peak(out.astype(np.float32), 0.9)


per_pair_method("notes", "the style's note envelopes at the content's onsets + smooth EQ",
                note_transfer)
per_pair_method("envelope-eq", "baseline: the style's smooth spectral envelope (8 mel bands) "
                "on the content, content phase", envelope_eq)
