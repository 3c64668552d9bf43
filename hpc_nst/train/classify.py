"""Classifying audio with a trained checkpoint: per 2.56 s window and overall."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from hpc_nst.audio.spectrogram import log_magnitude
from hpc_nst.config import STFTConfig
from hpc_nst.models.alexnet import AudioAlexNet

WINDOW_FRAMES = 257
"""Frames per window: 2.56 s at a 10 ms hop, the clip length the classifier was trained on."""
MIN_TAIL_FRAMES = 50
"""A last partial window shorter than this (0.5 s) is left out, unless it is the only one."""


@dataclass
class Classification:
    """Class probabilities of one file: per window ``(start_s, end_s, probs)`` and overall."""

    duration_s: float
    windows: list[tuple[float, float, np.ndarray]] = field(default_factory=list)
    overall: np.ndarray = field(default_factory=lambda: np.zeros(0))


def window_bounds(n_frames: int, window: int = WINDOW_FRAMES) -> list[tuple[int, int]]:
    """``(start, end)`` frame ranges covering ``n_frames``, one per 2.56 s of audio.

    Windows start every ``window - 1`` frames (2.56 s), so consecutive windows share the one
    frame centred on their common boundary, as 2.56 s clips cut from the file would.
    """
    step = max(1, window - 1)
    bounds = [(s, min(s + window, n_frames)) for s in range(0, max(n_frames - 1, 1), step)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < MIN_TAIL_FRAMES:
        bounds.pop()
    return bounds


@torch.no_grad()
def classify_audio(
    model: AudioAlexNet,
    audio: np.ndarray,
    stft: STFTConfig,
    device: torch.device | str = "cpu",
    batch_size: int = 16,
    skip_silent: bool = False,
) -> Classification:
    """Softmax probabilities of ``audio`` per 2.56 s window and overall.

    The overall probabilities are the windows' mean, weighted by window length; with
    ``skip_silent`` (``hpc-nst classify``) a window without a sample above the silence
    threshold weighs nothing (a silent intro would drag the verdict towards whatever the
    network makes of silence), unless every window is silent. The report's metrics keep
    every window (their figures were measured so).
    """
    model = model.eval().to(device)
    spec = log_magnitude(torch.from_numpy(np.asarray(audio, dtype=np.float32)), stft)
    bounds = window_bounds(spec.shape[-1])
    probs: list[np.ndarray] = []
    for b in range(0, len(bounds), batch_size):
        chunk = bounds[b : b + batch_size]
        x = torch.zeros(len(chunk), 1, spec.shape[0], WINDOW_FRAMES)
        for k, (s, e) in enumerate(chunk):
            x[k, 0, :, : e - s] = spec[:, s:e]
        lengths = torch.tensor([e - s for s, e in chunk])
        logits = model(x.to(device), lengths.to(device))
        probs.extend(torch.softmax(logits.float(), dim=1).cpu().numpy())
    hop_s = stft.hop_length / stft.sample_rate
    duration = len(audio) / stft.sample_rate
    weights = np.array([e - s for s, e in bounds], dtype=np.float64)
    if skip_silent:
        from hpc_nst.audio.io import is_silent

        hop = stft.hop_length
        sounding = np.array([not is_silent(np.asarray(audio)[s * hop: e * hop])
                             for s, e in bounds])
        if sounding.any():
            weights = weights * sounding
    overall = (np.stack(probs) * weights[:, None]).sum(axis=0) / weights.sum()
    windows = [
        (s * hop_s, min((e - 1) * hop_s, duration), p) for (s, e), p in zip(bounds, probs)
    ]
    return Classification(duration, windows, overall)


def top_k(probs: np.ndarray, classes: list[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes with their probabilities, best first."""
    order = np.argsort(-probs, kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in order]
