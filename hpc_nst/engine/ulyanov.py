"""Ulyanov & Lebedev (2016) audio texture style transfer, the baseline most public code follows.

The log-magnitude STFT's bins are the channels of a single random 1-D convolution over time
(4096 filters, width 11, ReLU; weights N(0, sqrt(2) * sqrt(2 / ((bins + filters) * 11)))).
The loss is ``content_weight * sum((phi(X) - phi(C))^2) + sum((G(X) - G(S))^2)`` with
``G = phi phi^T / frames`` (``content_weight`` 1e-2 as in their code, the job's
``loss.content_weight`` scaled by 1e-2), minimised by L-BFGS from noise, then Griffin-Lim. The
Gram distance is evaluated in frame space when that is cheaper (``GramTarget``), the same value
without the 4096 x 4096 matrices. Each
pair is optimised on its own (L-BFGS line searches are not separable). The recorded curves have
the four terms of the paper's objective evaluated on the spectrogram (``envelope`` and
``timbre`` are only measured, not optimised).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hpc_nst.audio.griffin_lim import griffin_lim
from hpc_nst.audio.spectrogram import log_magnitude, magnitude_from_log
from hpc_nst.config import JobConfig
from hpc_nst.engine.terms.base import PAPER_TERMS
from hpc_nst.engine.transfer import (
    Progress,
    TransferResult,
    divergence,
    initial_spectrogram,
    limit_peak,
)
from hpc_nst.losses import style_transfer as L

FILTERS, WIDTH, CONTENT_SCALE = 4096, 11, 1e-2

#: The loss curves a pair records (the same four terms as the paper's objective).
RECORDED = ("total", *PAPER_TERMS)


def random_filters(bins: int, seed: int, device: torch.device) -> torch.Tensor:
    """The random 1-D convolution kernel ``(4096, bins, 11)`` of their code."""
    std = math.sqrt(2) * math.sqrt(2.0 / ((bins + FILTERS) * WIDTH))
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(FILTERS, bins, WIDTH, generator=gen) * std).to(device)


def _features(spec: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    return F.relu(F.conv1d(spec[None], kernel, padding=WIDTH // 2))[0]


def _gram(feat: torch.Tensor) -> torch.Tensor:
    """``feat feat^T / frames`` for ``(filters, frames)`` features (one-product backward)."""
    return L.gram_rows(feat.T[None])[0] / feat.shape[-1]


@dataclass(frozen=True)
class GramTarget:
    """The style side of ``||G(X) - G(S)||^2``, ``G(F) = F F^T / frames``.

    With ``K`` filters and ``T`` frames the filter-space form costs ``O(K^2 T)`` per evaluation;
    the identities ``||F F^T||^2 = ||F^T F||^2`` and ``<F F^T, S S^T> = ||F^T S||^2`` give the same
    value from ``T x T`` products, ``O(K T^2)``: 16x fewer operations for a 2.56 s clip. The
    frame form subtracts large terms, so it runs in float64; it is used while ``2 (T_x + T_s) < K``
    (it is then the cheaper one, float64 included), else the filter form.
    """

    feat: torch.Tensor | None = None  # style features, float64 (frame form)
    gram: torch.Tensor | None = None  # style Gram (filter form)
    self_term: float = 0.0  # ||G(S)||^2 (frame form)

    @classmethod
    def build(cls, style_feat: torch.Tensor, frames: int) -> GramTarget:
        """Prepare for outputs of ``frames`` frames from ``(filters, style frames)`` features."""
        filters, s_frames = style_feat.shape
        if 2 * (frames + s_frames) >= filters:
            return cls(gram=_gram(style_feat))
        s = style_feat.double()
        return cls(feat=s, self_term=float((s.T @ s).pow(2).sum()) / s_frames**2)

    def distance(self, feat: torch.Tensor) -> torch.Tensor:
        """``||G(feat) - G(S)||^2`` (a float32 scalar, differentiable in ``feat``)."""
        if self.gram is not None:
            return (_gram(feat) - self.gram).pow(2).sum()
        assert self.feat is not None
        f, frames, s_frames = feat.double(), feat.shape[-1], self.feat.shape[-1]
        own = (f.T @ f).pow(2).sum() / frames**2
        cross = (f.T @ self.feat).pow(2).sum() / (frames * s_frames)
        return (own - 2 * cross + self.self_term).float()


def _one(
    content: np.ndarray,
    style: np.ndarray,
    cfg: JobConfig,
    seed: int,
    device: torch.device,
    progress: Progress | None,
) -> TransferResult:
    t0 = time.perf_counter()
    stft = cfg.stft
    c_spec = log_magnitude(torch.as_tensor(content, dtype=torch.float32), stft)
    s_spec = log_magnitude(torch.as_tensor(style, dtype=torch.float32), stft)
    kernel = random_filters(stft.n_bins, cfg.model.seed, device)
    c_dev, s_dev = c_spec.to(device), s_spec.to(device)
    with torch.no_grad():
        c_feat = _features(c_dev, kernel)
        s_gram = GramTarget.build(_features(s_dev, kernel), c_dev.shape[-1])
        s_env = L.resample_envelope(L.temporal_envelope(s_dev), s_dev.shape[-1], c_dev.shape[-1])
        timbre_args = (cfg.loss.timbre_envelope, cfg.loss.timbre_coefficients)
        s_len = torch.tensor([s_dev.shape[-1]], device=device)
        s_spectrum = L.timbre_target(s_dev[None], s_len, *timbre_args)[0]
    init = initial_spectrogram(c_spec, seed, cfg)
    x = init.clone().to(device).requires_grad_(True)
    alpha = CONTENT_SCALE * cfg.loss.content_weight
    history: dict[str, list[float]] = {k: [] for k in RECORDED}
    length = torch.tensor([x.shape[-1]], device=device)
    opt = torch.optim.LBFGS(
        [x],
        lr=1.0,
        max_iter=max(cfg.optim.iterations, 1),
        max_eval=max(cfg.optim.iterations, 1),
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def measure() -> torch.Tensor:
        feat = _features(x, kernel)
        content_term = (feat - c_feat).pow(2).sum()
        style_term = s_gram.distance(feat)
        total = alpha * content_term + style_term
        with torch.no_grad():
            env = float(L.envelope_loss(x[None], s_env[None], length)[0])
            timbre = float(L.timbre_loss(x[None], s_spectrum[None], length, *timbre_args)[0])
        for k, v in (
            ("total", float(total.detach())),
            ("content", float(content_term.detach())),
            ("style", float(style_term.detach())),
            ("envelope", env),
            ("timbre", timbre),
        ):
            history[k].append(v)
        if progress is not None and len(history["total"]) % 10 == 1:
            progress(
                len(history["total"]) - 1,
                cfg.optim.iterations,
                {k: v[-1] for k, v in history.items()},
            )
        return total

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = measure()
        loss.backward()
        return loss

    t1 = time.perf_counter()
    if cfg.optim.iterations:
        opt.step(closure)
    with torch.no_grad():
        measure()
    t2 = time.perf_counter()
    result = x.detach().clamp_min(0.0)
    gl = griffin_lim(
        magnitude_from_log(result)[None],
        stft,
        len(content),
        cfg.griffin_lim.iterations,
        cfg.griffin_lim.momentum,
        seed,
    )
    audio = limit_peak(gl.audio[0].cpu().numpy().astype(np.float32))
    t3 = time.perf_counter()
    curves = {k: np.asarray(v, dtype=np.float32) for k, v in history.items()}
    return TransferResult(
        audio=audio,
        output=result.cpu().numpy(),
        init=init.numpy(),
        content=c_spec.numpy(),
        style=s_spec.numpy(),
        losses=curves,
        spectral_convergence=float(gl.spectral_convergence[0]),
        seed=seed,
        device=str(device),
        timings={
            "features_s": t1 - t0,
            "optimise_s": t2 - t1,
            "griffin_lim_s": t3 - t2,
            "ms_per_iteration": 1000 * (t2 - t1) / max(len(curves["total"]) - 1, 1),
        },
        error=divergence(curves),
    )


def ulyanov_batch(
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    cfg: JobConfig,
    *,
    seeds: Sequence[int],
    device: torch.device,
    progress: Progress | None = None,
) -> list[TransferResult]:
    """Run the baseline on each pair in turn; one result per pair."""
    return [_one(c, s, cfg, seed, device, progress) for c, s, seed in zip(contents, styles, seeds)]
