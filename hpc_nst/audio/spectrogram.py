"""STFT log-magnitude spectrograms as in Verma & Smith (2017).

16 kHz audio, 480-sample (30 ms) periodic Hann window zero-padded to a 512-point FFT, 160-sample
(10 ms) hop, centred frames: ``1 + n_samples // 160`` frames of 257 bins. A 2.56 s clip
(40960 samples) is a 257x257 image. The log-magnitude is ``log(1 + |STFT|)``, which is 0 for
silence (so silent audio never produces -inf or NaN) and inverts exactly with ``expm1``.
"""

from __future__ import annotations

import torch

from hpc_nst.config import STFTConfig


def num_frames(n_samples: int, stft: STFTConfig) -> int:
    """Frames produced for ``n_samples`` samples (centred STFT)."""
    return 1 + n_samples // stft.hop_length


def num_samples(n_frames: int, stft: STFTConfig) -> int:
    """Samples whose STFT has ``n_frames`` frames (the shortest such length)."""
    return (n_frames - 1) * stft.hop_length


def _window(stft: STFTConfig, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    return torch.hann_window(stft.win_length, periodic=True, device=device, dtype=dtype)


def complex_stft(audio: torch.Tensor, stft: STFTConfig) -> torch.Tensor:
    """Complex STFT of ``audio`` shaped ``(..., samples)`` -> ``(..., bins, frames)``."""
    shape = audio.shape
    flat = audio.reshape(-1, shape[-1])
    spec = torch.stft(
        flat,
        n_fft=stft.n_fft,
        hop_length=stft.hop_length,
        win_length=stft.win_length,
        window=_window(stft, audio.device, audio.dtype),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def inverse_stft(spec: torch.Tensor, stft: STFTConfig, length: int) -> torch.Tensor:
    """Inverse of :func:`complex_stft` for ``(..., bins, frames)`` -> ``(..., length)``."""
    shape = spec.shape
    flat = spec.reshape(-1, *shape[-2:])
    audio = torch.istft(
        flat,
        n_fft=stft.n_fft,
        hop_length=stft.hop_length,
        win_length=stft.win_length,
        window=_window(stft, spec.device, spec.real.dtype),
        center=True,
        length=length,
    )
    return audio.reshape(*shape[:-2], length)


def log_magnitude(audio: torch.Tensor, stft: STFTConfig) -> torch.Tensor:
    """``log(1 + |STFT(audio)|)`` shaped ``(..., 257, frames)``."""
    return torch.log1p(complex_stft(audio, stft).abs())


def magnitude_from_log(log_mag: torch.Tensor) -> torch.Tensor:
    """Invert :func:`log_magnitude` (negative values, impossible for a real STFT, clip to 0)."""
    return torch.expm1(log_mag.clamp(min=0.0))
