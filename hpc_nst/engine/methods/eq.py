"""``eq``: a static equaliser, the content's STFT times the ratio of the style's to the content's
time-averaged magnitude spectrum, content phase kept (the baseline the frequency envelope term
alone pulls towards)."""

from __future__ import annotations

import numpy as np
import torch

from hpc_nst.audio.spectrogram import complex_stft, inverse_stft
from hpc_nst.config import JobConfig
from hpc_nst.engine.methods.base import per_pair_method
from hpc_nst.engine.transfer import limit_peak


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


per_pair_method("eq", "baseline: static equaliser of the content towards the style", static_eq)
