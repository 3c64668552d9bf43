"""``notes``: the content's STFT with the style's note envelopes at the content's onsets, then the
style's smooth spectral envelope; ``envelope-eq``: that envelope alone. Content phase kept, no
optimisation: milliseconds per pair. See :mod:`hpc_nst.engine.note_envelope`."""

from __future__ import annotations

import numpy as np
import torch

from hpc_nst.audio.spectrogram import complex_stft, inverse_stft
from hpc_nst.config import JobConfig
from hpc_nst.engine.methods.base import per_pair_method
from hpc_nst.engine.note_envelope import envelope_eq_gains, reenvelope_gains
from hpc_nst.engine.transfer import limit_peak


def _content_and_style(content: np.ndarray, style: np.ndarray, cfg: JobConfig
                       ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """The content's complex STFT (float64) and the two magnitudes as arrays ``(bins, frames)``."""
    c = complex_stft(torch.as_tensor(content, dtype=torch.float32), cfg.stft).to(torch.complex128)
    s = complex_stft(torch.as_tensor(style, dtype=torch.float32), cfg.stft)
    return c, c.abs().numpy(), s.abs().double().numpy()


def _filtered(c: torch.Tensor, gain: np.ndarray, cfg: JobConfig, n: int) -> np.ndarray:
    """Audio of ``c`` times per-bin (``(bins, 1)``) or per-bin-and-frame gains, peak-limited."""
    spec = (c * torch.from_numpy(gain)).to(torch.complex64)
    return limit_peak(inverse_stft(spec, cfg.stft, n).numpy().astype(np.float32), 0.9)


def note_transfer(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    """Content audio with the style's per-band note envelopes and spectral envelope."""
    c, c_mag, s_mag = _content_and_style(content, style, cfg)
    sr = cfg.stft.sample_rate
    gain = 10.0 ** (reenvelope_gains(c_mag, s_mag, sr, cfg.stft.hop_length) / 20.0)
    gain = gain * envelope_eq_gains(c_mag * gain, s_mag, sr)[:, None]
    return _filtered(c, gain, cfg, len(content))


def envelope_eq(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    """Content audio given the style's smooth spectral envelope (8 mel bands), content phase."""
    c, c_mag, s_mag = _content_and_style(content, style, cfg)
    gain = envelope_eq_gains(c_mag, s_mag, cfg.stft.sample_rate)[:, None]
    return _filtered(c, gain, cfg, len(content))


per_pair_method("notes", "the style's note envelopes at the content's onsets + smooth EQ",
                note_transfer)
per_pair_method("envelope-eq", "baseline: the style's smooth spectral envelope (8 mel bands) "
                "on the content, content phase", envelope_eq)
