"""Content, style (Gram), temporal-envelope and frequency-envelope losses, per batch item.

Every function takes padded batches plus each item's valid length and returns one value per
item, so a batch of B pairs optimises B independent problems. Definitions (``X``: log-magnitude
``(B, F, T)``; ``phi_l``: activations ``(B, C, F_l, T_l)`` at layer ``l``; ``N_l``: valid
positions ``F_l * T_l``):

- content:  mean over positions of ``(phi(X) - phi(C))^2`` divided by the mean of ``phi(C)^2``;
- style:    ``G_l = phi_l phi_l^T / N_l`` (so lengths may differ), and per layer
  ``||G_l(X) - G_l(S)||^2 / ||G_l(S)||^2``, weighted over layers;
- envelope: mean over frames of ``(e_X(t) - e_S(t))^2``, ``e(t)`` the mean log-magnitude of
  frame ``t``; the style's envelope is linearly resampled to the content's frame count;
- timbre:   with ``loss.timbre_envelope = "spectrum"``: mean over bins of ``(f_X - f_S)^2``, ``f``
  the time-averaged log-magnitude spectrum; with ``"cepstral"``: the relative squared distance
  ``||c_X - c_S||^2 / ||c_S||^2`` of the spectral envelopes' cepstra ``c`` (``cepstral_envelope``):
  the same time-averaged spectrum, but in dB and smoothed across frequency, so it carries the
  timbre and not the notes.

The relative normalisations make each term scale-free, so one weight set fits every model and
every input.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch.autograd.function import FunctionCtx, once_differentiable

EPS = 1e-12
FLOOR_DB = 80.0  # dynamic range of the cepstral timbre envelope below each item's peak


def _time_mask(lengths: torch.Tensor, frames: int, dtype: torch.dtype) -> torch.Tensor:
    idx = torch.arange(frames, device=lengths.device)
    return (idx[None, :] < lengths[:, None]).to(dtype)


class _Gram(torch.autograd.Function):
    """``G = R^T R`` for rows ``R`` ``(B, N, C)``, with a one-product backward.

    Autograd's own backward of ``bmm(R^T, R)`` makes two ``(N, C) x (C, C)`` products and adds
    them; since ``G`` is symmetric, ``dR = R (dG + dG^T)`` is one product (a fifth of the
    engine's CPU time at width 16 was in these products).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, rows: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(rows)
        return torch.bmm(rows.transpose(1, 2), rows)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (rows,) = ctx.saved_tensors
        sym = grad + grad.transpose(1, 2)
        if rows.shape[0] == 1:  # one pair (a CPU task): at C = 16, N = 66049 bmm took 2.5 ms
            return torch.mm(rows[0], sym[0]).unsqueeze(0)  # of a 28 ms step, mm 0.65
        return torch.bmm(rows, sym)


def gram_rows(rows: torch.Tensor) -> torch.Tensor:
    """Unnormalised ``R^T R`` ``(B, C, C)`` of rows ``(B, N, C)``, with the one-product backward."""
    return _Gram.apply(rows)


def gram(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``(B, C, C)`` normalised by each item's valid positions.

    Padded frames must already be zero (the network guarantees it). Channels-last features
    (the network's layout) are read as ``(B, F*T, C)`` rows without a copy.
    """
    b, c, f, t = features.shape
    positions = (lengths.clamp(max=t) * f).clamp_min(1).to(features.dtype)
    rows = features.permute(0, 2, 3, 1).reshape(b, f * t, c)  # a view when channels-last
    return gram_rows(rows) / positions[:, None, None]


class _SquaredDistance(torch.autograd.Function):
    """``sum((x - t)^2)`` per item of ``(B, ...)`` activations, ``t`` constant: one pass each
    way (autograd's ``pow(2).sum()`` backward is three passes over the activations; at conv2
    they cost 3 ms of a 28 ms one-thread CPU step)."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = x - target
        ctx.save_for_backward(diff)
        dims = tuple(range(1, diff.dim()))  # over dims, not flatten(1): no channels-last copy
        return torch.linalg.vector_norm(diff, dim=dims).square()

    @staticmethod
    @once_differentiable  # (a second derivative through the saved difference would be wrong)
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (diff,) = ctx.saved_tensors
        scale = (2.0 * grad).to(diff.dtype).reshape(-1, *([1] * (diff.dim() - 1)))
        return diff * scale, None


def energy(features: torch.Tensor) -> torch.Tensor:
    """``sum(features^2)`` per item of ``(B, C, F, T)`` activations (one pass, no copy)."""
    return torch.linalg.vector_norm(features, dim=(1, 2, 3)).square()


def content_loss(
    features: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor,
    target_energy: torch.Tensor | None = None,
) -> torch.Tensor:
    """Normalised squared distance between activations at one layer, per item.
    ``target_energy``: :func:`energy` of ``target`` where the caller keeps it (the target is
    constant through an optimisation)."""
    b, c, f, t = features.shape
    count = (lengths.clamp(max=t) * f * c).clamp_min(1).to(features.dtype)
    target = target.detach()
    err = _SquaredDistance.apply(features, target) / count
    ref = (energy(target) if target_energy is None else target_energy) / count
    return err / (ref + EPS)


def style_loss(gram_x: torch.Tensor, gram_s: torch.Tensor) -> torch.Tensor:
    """Relative squared Frobenius distance between Gram matrices, per item."""
    err = (gram_x - gram_s).pow(2).flatten(1).sum(1)
    return err / (gram_s.pow(2).flatten(1).sum(1) + EPS)


def temporal_envelope(log_mag: torch.Tensor) -> torch.Tensor:
    """Mean log-magnitude per frame: ``(B, F, T)`` -> ``(B, T)``."""
    return log_mag.mean(dim=-2)


def frequency_envelope(log_mag: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Time-averaged log-magnitude spectrum over valid frames: ``(B, F, T)`` -> ``(B, F)``."""
    mask = _time_mask(lengths, log_mag.shape[-1], log_mag.dtype)
    return (log_mag * mask[:, None, :]).sum(-1) / lengths.clamp_min(1)[:, None].to(log_mag.dtype)


def resample_envelope(envelope: torch.Tensor, length: int, frames: int) -> torch.Tensor:
    """Linearly resample the first ``length`` values of a 1-D envelope to ``frames`` values."""
    env = envelope[:length].reshape(1, 1, -1)
    if length == frames:
        return env.flatten()
    if length == 1:
        return env.flatten().expand(frames).clone()
    return F.interpolate(env, size=frames, mode="linear", align_corners=True).flatten()


def envelope_loss(
    log_mag: torch.Tensor, target_env: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """Mean squared deviation of the temporal envelope over valid frames, per item."""
    mask = _time_mask(lengths, log_mag.shape[-1], log_mag.dtype)
    err = (temporal_envelope(log_mag) - target_env).pow(2) * mask
    return err.sum(-1) / lengths.clamp_min(1).to(log_mag.dtype)


@functools.lru_cache(maxsize=16)
def dct_basis(
    n: int, coefficients: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Rows 1..``coefficients`` of the orthonormal DCT-II of length ``n``: ``(K, n)`` (cached;
    float64 on the CPU unless ``device``/``dtype`` are given)."""
    k = torch.arange(1, coefficients + 1, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    basis = torch.cos(torch.pi / n * (i + 0.5) * k) * math.sqrt(2.0 / n)
    return basis.to(device=device, dtype=dtype or torch.float64)


def floored_db(log_mag: torch.Tensor, lengths: torch.Tensor, floor_db: float) -> torch.Tensor:
    """Magnitude ``expm1(X)`` in dB, floored ``floor_db`` below each item's peak; 0 in padded
    frames. ``(B, F, T)`` -> ``(B, F, T)``. The floor follows the signal without a gradient."""
    valid = _time_mask(lengths, log_mag.shape[-1], log_mag.dtype)[:, None, :] > 0
    # clamped below expm1's float32 overflow, so no inf (or NaN gradient) from padded frames
    mag = torch.where(valid, torch.expm1(log_mag.clamp(0.0, 80.0)), 0.0)
    peak = mag.flatten(1).amax(1).detach().clamp_min(EPS)
    floor = peak * 10.0 ** (-floor_db / 20.0)
    return torch.where(valid, 20.0 * torch.log10(torch.maximum(mag, floor[:, None, None])), 0.0)


class _MeanFlooredDb(torch.autograd.Function):
    """:func:`floored_db` averaged over each item's valid frames, ``(B, F, T)`` -> ``(B, F)``
    (an item's frame count is its length, at most ``T``), with a one-pass backward: the
    gradient is a per-bin factor saved by the forward times the incoming ``(B, F)`` gradient
    (autograd's chain through clamp, expm1, the floor's maximum, log10 and the masks was eight
    passes over the spectrogram: fwd + bwd 1.2 ms on a 257 x 257 spectrogram on one thread,
    this 0.6). A value exactly at the floor gets no gradient (``torch.maximum`` would pass it
    half)."""

    @staticmethod
    def forward(ctx: FunctionCtx, log_mag: torch.Tensor, lengths: torch.Tensor,
                floor_db: float) -> torch.Tensor:
        frames = log_mag.shape[-1]
        valid = lengths.clamp(0, frames).to(log_mag.dtype)
        mag = torch.expm1(log_mag.clamp(0.0, 80.0))
        padded = bool((lengths < frames).any())
        if padded:
            mag.masked_fill_(_time_mask(lengths, frames, log_mag.dtype)[:, None, :] == 0, 0.0)
        peak = mag.flatten(1).amax(1).clamp_min(EPS)
        floor = (peak * 10.0 ** (-floor_db / 20.0))[:, None, None]
        above = mag > floor  # padded frames hold 0: never above
        above &= log_mag <= 80.0  # the clamp's zero gradient past 80
        if padded:  # relative to the floor, so that padded frames add exactly 0
            log_sum = torch.maximum(mag, floor).div_(floor).log10_().sum(-1)
            log_sum += valid[:, None] * floor[:, :, 0].log10()
        else:
            log_sum = torch.maximum(mag, floor).log10_().sum(-1)
        # d dB / dX = 20 / ln 10 * e^X / (e^X - 1) above the floor
        scale = (20.0 / math.log(10.0)) / valid.clamp_min(1)[:, None, None]
        factor = torch.where(above, (mag + 1.0).div_(mag), 0.0).mul_(scale)
        ctx.save_for_backward(factor)
        return log_sum * (20.0 / valid.clamp_min(1)[:, None])

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (factor,) = ctx.saved_tensors
        return factor * grad[:, :, None].to(factor.dtype), None, None


def cepstral_envelope(
    log_mag: torch.Tensor, lengths: torch.Tensor, coefficients: int
) -> torch.Tensor:
    """Cepstrum 1..``coefficients`` of the time-averaged dB spectrum: ``(B, F, T)`` -> ``(B, K)``.

    Per item the magnitude ``expm1(X)`` goes to dB, floored ``FLOOR_DB`` below the item's peak
    (the usual 80 dB range of a dB spectrogram); the valid frames are averaged and the
    orthonormal DCT over bins is kept from coefficient 1 (0, the level, is the envelope term's)
    to ``coefficients``, i.e. the envelope smoothed over about ``F / coefficients`` bins: the
    instrument's spectral shape without the harmonic comb of the notes. The floor follows the
    signal without a gradient; above it the gradient of a bin's dB value grows like ``1 / X``
    towards the floor (Adam's step normalisation absorbs that).
    """
    if coefficients < 1:
        raise ValueError(f"cepstral_envelope needs coefficients >= 1, got {coefficients}")
    mean_db = _MeanFlooredDb.apply(log_mag, lengths, FLOOR_DB)
    basis = dct_basis(log_mag.shape[-2], coefficients, log_mag.device, log_mag.dtype)
    return mean_db @ basis.T


def timbre_target(
    log_mag: torch.Tensor, lengths: torch.Tensor, envelope: str, coefficients: int
) -> torch.Tensor:
    """What the timbre term compares, per item: the spectrum ``(B, F)`` or cepstrum ``(B, K)``."""
    if envelope == "cepstral":
        return cepstral_envelope(log_mag, lengths, coefficients)
    return frequency_envelope(log_mag, lengths)


def timbre_loss(
    log_mag: torch.Tensor,
    target: torch.Tensor,
    lengths: torch.Tensor,
    envelope: str = "spectrum",
    coefficients: int = 0,
) -> torch.Tensor:
    """Timbre term per item against ``target`` from :func:`timbre_target` (module docstring)."""
    own = timbre_target(log_mag, lengths, envelope, coefficients)
    if envelope == "cepstral":  # relative, but never below 1 dB^2 per coefficient (a flat style)
        scale = target.pow(2).sum(-1).clamp_min(float(target.shape[-1]))
        return (own - target).pow(2).sum(-1) / scale
    return (own - target).pow(2).mean(-1)
