"""Synthetic melodies for the per-pair methods' tests (``harmonic``, ``sampler``)."""

from __future__ import annotations

import numpy as np

SR = 16000


def notes(freqs: list[float], seconds: float = 0.5, decay_s: float | None = None,
          harmonics: list[float] | None = None, gap_s: float = 0.1) -> np.ndarray:
    """A melody: each note ``seconds`` long (then ``gap_s`` of silence), harmonic amplitudes
    ``harmonics`` (default 1/h for 8), an exponential decay of time constant ``decay_s`` or
    sustained with 10 ms ramps."""
    amps = harmonics or [1.0 / h for h in range(1, 9)]
    t = np.arange(int(seconds * SR)) / SR
    env = np.exp(-t / decay_s) if decay_s else np.ones_like(t)
    env *= np.clip(t / 0.01, 0, 1) * np.clip((seconds - t) / 0.01, 0, 1)
    out = []
    for f in freqs:
        tone = sum(a * np.sin(2 * np.pi * f * (h + 1) * t) for h, a in enumerate(amps)
                   if f * (h + 1) < SR / 2)
        out += [0.3 * env * tone / sum(amps), np.zeros(int(gap_s * SR))]
    return np.concatenate(out).astype(np.float32)


def level_db(x: np.ndarray, a: float, b: float) -> float:
    seg = x[int(a * SR):int(b * SR)]
    return 10 * np.log10(np.mean(seg ** 2) + 1e-12)


def harmonic_db(x: np.ndarray, f0: float, h: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(round(f0 * h * len(x) / SR))
    return 20 * np.log10(spec[k - 2:k + 3].max() + 1e-12)
