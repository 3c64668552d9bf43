"""Spectral centroid and bandwidth, the measures behind the paper's bandwidth claims.

Per STFT frame (512-point Hann, hop 128, centred with zero padding) the centroid is the
magnitude-weighted mean frequency and the bandwidth the square root of the magnitude-weighted
variance around it. Frames are averaged weighted by their total magnitude, so silence does not
count; all-silent audio gives 0.
"""

from __future__ import annotations

import numpy as np


def _frame_stats(
    audio: np.ndarray, sample_rate: int, n_fft: int, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    padded = np.pad(np.asarray(audio, dtype=np.float64), (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft + 1)[:-1], axis=1))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    total = mag.sum(axis=1)
    keep = total > 0
    mag, total = mag[keep], total[keep]
    centroid = (mag * freqs).sum(axis=1) / np.where(total > 0, total, 1)
    spread = np.sqrt(
        (mag * (freqs - centroid[:, None]) ** 2).sum(axis=1) / np.where(total > 0, total, 1)
    )
    return centroid, spread, total


def spectral_centroid(
    audio: np.ndarray, sample_rate: int = 16000, n_fft: int = 512, hop: int = 128
) -> float:
    """Magnitude-weighted mean frequency in Hz."""
    centroid, _, total = _frame_stats(audio, sample_rate, n_fft, hop)
    return float((centroid * total).sum() / total.sum()) if total.size else 0.0


def spectral_bandwidth(
    audio: np.ndarray, sample_rate: int = 16000, n_fft: int = 512, hop: int = 128
) -> float:
    """Magnitude-weighted spread of frequency around the centroid, in Hz."""
    _, spread, total = _frame_stats(audio, sample_rate, n_fft, hop)
    return float((spread * total).sum() / total.sum()) if total.size else 0.0


def spectral_shape(
    audio: np.ndarray, sample_rate: int = 16000, n_fft: int = 512, hop: int = 128
) -> tuple[float, float]:
    """``(centroid, bandwidth)`` in Hz with one STFT (same values as the two functions)."""
    centroid, spread, total = _frame_stats(audio, sample_rate, n_fft, hop)
    if not total.size:
        return 0.0, 0.0
    weight = total.sum()
    return float((centroid * total).sum() / weight), float((spread * total).sum() / weight)
