"""A style-conditioned post-filter: per log-mel band and frame, a gain (at most +-12 dB) on a
rendering, predicted from the rendering's band-normalised log-mel and the style recording's
band dynamics (per band the spread over time and the mean frame-to-frame change) and texture
statistics (:func:`texture_statistics`: rises, falls, modulation power, cross-band correlation).

It was trained (:mod:`hpc_nst.train.post_filter`) on renders that no evaluation uses, with a
loss on **dynamics statistics** (per band: the spread over time and the mean absolute change at
lags of 1, 2 and 4 frames) against the target, beside a band-normalised L1: a plain regression
of levels smooths away the moves that make an instrument recognisable (docs/quality.md, "A
learned post-filter"), a loss on the statistics asks for them. Its input has each band's time
mean removed, so a static filter of the rendering does not change the gains it predicts.
"""

from __future__ import annotations

import functools
import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SR, N_FFT, HOP, N_MELS = 16000, 1024, 256, 64
FLOOR_DB = 80.0  # a clip's log-mel floor under its maximum
MAX_GAIN_DB = 12.0
LAGS = (1, 2, 4)  # frames (16 ms) of the dynamics statistics
TEXTURE_FLOOR_DB = 60.0  # the texture statistics see a clip this far under its maximum
RATE_BANDS_HZ = ((0.5, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 31.25))
STYLE_FEATURES = 12 * N_MELS  # what style_statistics gives the network
MIN_STYLE_SECONDS = 1.0  # a shorter style has too few frames for the slow modulation rates
log = logging.getLogger(__name__)
DEFAULT_ASSET = Path(__file__).resolve().parent.parent / "assets" / "post-filter.pt"


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(N_MELS, frames) dB log-mel power, floored FLOOR_DB under the clip's maximum."""
    import librosa

    power = np.abs(librosa.stft(np.asarray(audio, np.float32), n_fft=N_FFT,
                                hop_length=HOP)) ** 2
    db = 10.0 * np.log10(np.maximum(mel_filterbank() @ power, 1e-10))
    return np.maximum(db, db.max() - FLOOR_DB).astype(np.float32)


def style_statistics(audio: np.ndarray) -> np.ndarray:
    """(STYLE_FEATURES,) the style's dynamics, unchanged by a gain: per band the spread over
    time and the mean |frame-to-frame change| (dB), then its :func:`texture_statistics`."""
    m = log_mel(audio)
    spread = (m - m.mean(axis=1, keepdims=True)).std(axis=1)
    change = np.abs(np.diff(m, axis=1)).mean(axis=1) if m.shape[1] > 1 else np.zeros(N_MELS)
    texture = texture_statistics(torch.from_numpy(m)).numpy().ravel() if m.shape[1] > 4 \
        else np.zeros(10 * N_MELS)
    return np.concatenate([spread, change, texture]).astype(np.float32)


def dynamics_statistics(m: torch.Tensor) -> torch.Tensor:
    """(..., 1 + len(LAGS), bands) per band: the spread over time and the mean absolute change
    at each lag of ``m`` (..., bands, frames), dB."""
    out = [(m - m.mean(-1, keepdim=True)).std(-1)]
    out += [(m[..., lag:] - m[..., :-lag]).abs().mean(-1) for lag in LAGS]
    return torch.stack(out, -2)


def texture_statistics(m: torch.Tensor) -> torch.Tensor:
    """(..., 10, bands) sound-texture statistics (McDermott & Simoncelli 2011, on log-mel
    envelopes) of ``m`` (..., bands, frames), dB, floored TEXTURE_FLOOR_DB under its maximum:
    per band the spread over time, the mean rise and the mean fall between frames, the mean
    absolute change over 4 frames, the modulation power (dB) in each of RATE_BANDS_HZ, and the
    correlation with the next band (times 10, so that 0.1 weighs as 1 dB). A gain changes none
    of them, a static filter only where it moves a level across the floor. The family of
    :func:`hpc_nst.metrics.judge.judge_features`, differentiable and on this module's log-mel
    (1024-point frames, floored under the clip's peak, not the judge's per-clip floor of its own
    mel), for a model's conditioning or loss; the judges are never trained against it. A clip
    shorter than 1/0.5 Hz has no frame rate in the slowest band: that band reads -60 dB."""
    peak = m.amax(dim=(-2, -1), keepdim=True)
    d = torch.maximum(m, peak - TEXTURE_FLOOR_DB)
    d = d - d.mean(-1, keepdim=True)
    step = d[..., 1:] - d[..., :-1]
    std = d.std(-1)
    out = [std, step.clamp(min=0).mean(-1), (-step).clamp(min=0).mean(-1),
           (d[..., 4:] - d[..., :-4]).abs().mean(-1)]
    frames = d.shape[-1]
    power = torch.fft.rfft(d, dim=-1).abs() ** 2 / frames**2
    rates = torch.fft.rfftfreq(frames, d=HOP / SR)
    for lo, hi in RATE_BANDS_HZ:
        sel = (rates >= lo) & (rates < hi)
        out.append(10.0 * torch.log10(power[..., sel].sum(-1) + 1e-6))
    centred = d / (std[..., None] + 1e-3)
    corr = (centred[..., :-1, :] * centred[..., 1:, :]).mean(-1)
    out.append(10.0 * torch.cat([corr, torch.zeros_like(corr[..., :1])], -1))
    return torch.stack(out, -2)


class _FiLM(nn.Module):
    def __init__(self, channels: int, conditioning: int) -> None:
        super().__init__()
        self.linear = nn.Linear(conditioning, 2 * channels)

    def forward(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(z).chunk(2, -1)
        return h * (1 + scale[..., None]) + shift[..., None]


class PostFilterNet(nn.Module):
    """Bands as channels, dilated convolutions over time (receptive field 33 frames, 0.53 s),
    each layer modulated (FiLM) by the style's statistics; output: dB gains, zero at
    initialisation."""

    def __init__(self, channels: int = 128, conditioning: int = 128) -> None:
        super().__init__()
        self.condition = nn.Sequential(nn.Linear(STYLE_FEATURES, conditioning), nn.GELU(),
                                       nn.Linear(conditioning, conditioning))
        self.convs = nn.ModuleList([
            nn.Conv1d(N_MELS, channels, 5, padding=2),
            *(nn.Conv1d(channels, channels, 3, padding=d, dilation=d) for d in (2, 4, 8))])
        self.films = nn.ModuleList([_FiLM(channels, conditioning) for _ in self.convs])
        self.out = nn.Conv1d(channels, N_MELS, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, mel_db: torch.Tensor, style_stats: torch.Tensor) -> torch.Tensor:
        """Gains (batch, N_MELS, frames) in dB for ``mel_db`` (batch, N_MELS, frames)."""
        z = self.condition(style_stats / 10.0)  # dB to about unit scale
        h = (mel_db - mel_db.mean(-1, keepdim=True)) / 10.0  # band-normalised: EQ-invariant
        for conv, film in zip(self.convs, self.films):
            step = nn.functional.gelu(film(conv(h), z))
            h = step if step.shape[1] != h.shape[1] else h + step
        return MAX_GAIN_DB * torch.tanh(self.out(h) / MAX_GAIN_DB)


def save_post_filter(model: PostFilterNet, path: Path, record: dict[str, Any]) -> Path:
    from hpc_nst.fsutil import atomic_write

    payload = {"state_dict": model.state_dict(), "record": record}
    atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))
    return Path(path)


@functools.lru_cache(maxsize=2)
def load_post_filter(path: str | None = None) -> PostFilterNet:
    """The shipped post-filter (or the one at ``path``), in eval mode; cached per process."""
    from hpc_nst.errors import CheckpointError

    where = Path(path) if path else DEFAULT_ASSET
    try:
        payload = torch.load(where, map_location="cpu", weights_only=True)
        inputs = payload["state_dict"]["condition.0.weight"].shape[1]
        if inputs != STYLE_FEATURES:
            raise CheckpointError(
                f"{where}: a post-filter of another version (conditioned on {inputs} style "
                f"features; this hpc_nst's takes {STYLE_FEATURES}: version 1 took "
                f"{2 * N_MELS}); reinstall hpc_nst or retrain it "
                "(benchmarks/train_post_filter.py)")
        model = PostFilterNet()
        model.load_state_dict(payload["state_dict"])
    except CheckpointError:
        raise
    except (OSError, KeyError, RuntimeError, ValueError, EOFError, IndexError,
            pickle.UnpicklingError) as exc:
        raise CheckpointError(f"{where}: not a post-filter checkpoint ({exc}); reinstall "
                              "hpc_nst or retrain it (benchmarks/train_post_filter.py)") from None
    return model.eval()


def post_filter(audio: np.ndarray, style: np.ndarray, model: PostFilterNet) -> np.ndarray:
    """``audio`` with the model's band gains applied (spread to the STFT bins by the mel
    filterbank's weights, the audio's own phase), the same length. Unchanged (and said so in
    the log) where the style is shorter than MIN_STYLE_SECONDS: its statistics would be of a
    kind the model never saw."""
    import librosa

    a = np.asarray(audio, np.float32)
    if len(a) < N_FFT or not np.any(a):
        return a.copy()
    if len(style) < MIN_STYLE_SECONDS * SR:
        log.warning("post-filter not applied: the style is %.2f s, under %.1f s",
                    len(style) / SR, MIN_STYLE_SECONDS)
        return a.copy()
    mel = torch.from_numpy(log_mel(a))[None]
    stats = torch.from_numpy(style_statistics(style))[None]
    with torch.no_grad():
        gains = model(mel, stats)[0].numpy()
    fb = mel_filterbank()
    weights = fb / np.maximum(fb.sum(axis=0, keepdims=True), 1e-12)  # per bin, over bands
    per_bin = weights.T @ gains  # (bins, frames) dB; 0 where no band covers a bin
    spec = librosa.stft(a, n_fft=N_FFT, hop_length=HOP)
    frames = min(spec.shape[1], per_bin.shape[1])
    spec[:, :frames] *= (10.0 ** (per_bin[:, :frames] / 20.0)).astype(np.float32)
    return librosa.istft(spec, hop_length=HOP, length=len(a)).astype(np.float32)
