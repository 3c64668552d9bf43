"""Batched audio style transfer: B content/style pairs optimised together on one device.

Pipeline per batch: log-magnitude spectrograms of every input; the targets of the job's loss
terms computed once (:mod:`hpc_nst.engine.objective`); X initialised per pair (Gaussian noise
from the pair's seed, or the content); Adam or L-BFGS on the summed per-pair objective;
Griffin-Lim from a random phase drawn from the pair's own seed.

Per-pair reproducibility: every random draw of a pair comes from its own seed. On a CPU each
pair is optimised and resynthesised on its own (at its own length; one pair at a time is also
the fastest there), so its audio is bit-identical whatever its batch companions and the batch
size. On a GPU the batch is optimised together: each pair's loss depends only on its own X and
Adam's update is element-wise, so a pair's result equals running it alone within float
rounding; Griffin-Lim runs over the pairs of equal length together. L-BFGS shares its line
search across a GPU batch; with L-BFGS, run batch size 1 when exact independence matters.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hpc_nst.audio.griffin_lim import griffin_lim
from hpc_nst.audio.spectrogram import log_magnitude, magnitude_from_log, num_frames
from hpc_nst.config import JobConfig
from hpc_nst.engine import windows as win
from hpc_nst.engine.device import TransferError, check_memory, pick_device
from hpc_nst.engine.objective import Objective
from hpc_nst.models.alexnet import AudioAlexNet
from hpc_nst.models.checkpoint import network_width, resolve_model

#: Output audio louder than this is scaled down to it (16-bit files would clip at 1.0).
PEAK = 0.99


def divergence(curves: dict[str, np.ndarray]) -> str | None:
    """The error of a pair whose loss became NaN/Inf, naming the terms that did (and when),
    or None where every recorded value is finite."""
    if np.isfinite(curves["total"]).all():
        return None
    bad = [(int(np.argmin(np.isfinite(v))), k) for k, v in curves.items()
           if k != "total" and not np.isfinite(v).all()]
    which = ", ".join(f"{k!r} from recorded point {i}" for i, k in sorted(bad)) or "the total"
    terms = "that term's" if len(bad) == 1 else "those terms'" if bad else "the terms'"
    return (f"optimisation diverged: loss became NaN/Inf ({which}); check {terms} inputs and "
            "weights, or lower optim.learning_rate")

def limit_peak(audio: np.ndarray, peak: float = PEAK) -> np.ndarray:
    """Scale ``audio`` down (in place) when louder than ``peak``: a log-magnitude carries no
    level limit, and 16-bit files would clip at 1.0."""
    loudest = float(np.abs(audio).max()) if audio.size else 0.0
    if loudest > peak:
        audio *= peak / loudest
    return audio


def at_peak_of(audio: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``audio`` scaled to ``reference``'s peak level, then peak-limited (the end of the
    resynthesis methods; the metrics normalise loudness anyway)."""
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0:
        audio = audio * (float(np.abs(reference).max()) / peak)
    return limit_peak(audio, 0.9)


#: ``progress(iteration, iterations, mean_terms)`` is called every few iterations.
Progress = Callable[[int, int, dict[str, float]], None]


@dataclass
class TransferResult:
    """Everything one pair's transfer produced. Spectrograms are ``(bins, frames)``."""

    audio: np.ndarray
    output: np.ndarray
    init: np.ndarray
    content: np.ndarray
    style: np.ndarray
    losses: dict[str, np.ndarray]  # "total" and each term, one value per recorded iteration
    spectral_convergence: float
    seed: int
    device: str
    timings: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    group_pairs: int = 1  # pairs optimised together (whose shared ``timings`` these are)


def _stack(specs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad ``(F, T_i)`` spectrograms to ``(B, F, max T)``; also return the lengths."""
    lengths = torch.tensor([s.shape[-1] for s in specs])
    out = torch.zeros(len(specs), specs[0].shape[0], int(lengths.max()), dtype=specs[0].dtype)
    for i, s in enumerate(specs):
        out[i, :, : s.shape[-1]] = s
    return out, lengths


def initial_spectrogram(content: torch.Tensor, seed: int, cfg: JobConfig) -> torch.Tensor:
    """The starting point for one pair: seeded Gaussian noise (on the CPU) or the content."""
    if cfg.optim.init == "content":
        return content.clone()
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(content.shape, generator=gen) * cfg.optim.noise_std


def _optimise(
    x: torch.Tensor,
    objective: Objective,
    cfg: JobConfig,
    mask: torch.Tensor,
    progress: Progress | None,
) -> dict[str, list[torch.Tensor]]:
    """Run the optimiser in place on ``x``; return the recorded per-item curves."""
    history: dict[str, list[torch.Tensor]] = {k: [] for k in ("total", *objective.names)}
    iterations, every = cfg.optim.iterations, cfg.optim.record_every
    step = 0

    def evaluate() -> torch.Tensor:
        """Loss of every item; sets ``x.grad``."""
        nonlocal step
        xc = x.detach().requires_grad_(True)
        with precision_context(cfg.optim.precision, x.device):
            total, terms = objective(xc * mask)
        total, terms = total.float(), {k: v.float() for k, v in terms.items()}
        # Non-finite items must not poison the others: drop them from the objective.
        kept = torch.where(torch.isfinite(total), total, torch.zeros_like(total))
        (grad,) = torch.autograd.grad(kept.sum(), xc)
        x.grad = grad.nan_to_num_(0.0, 0.0, 0.0)
        total, terms = total.detach(), {k: v.detach() for k, v in terms.items()}
        if step % every == 0 or step == iterations - 1:
            history["total"].append(total)
            for k, v in terms.items():
                history[k].append(v)
        if progress is not None and (step % 10 == 0 or step == iterations - 1):
            progress(
                step,
                iterations,
                {k: float(v.mean()) for k, v in terms.items()} | {"total": float(total.mean())},
            )
        step += 1
        return kept.detach().sum()

    if cfg.optim.optimizer == "adam":
        opt = torch.optim.Adam([x], lr=cfg.optim.learning_rate)
        for _ in range(iterations):
            evaluate()
            opt.step()
    else:
        opt = torch.optim.LBFGS(
            [x],
            lr=1.0,
            max_iter=iterations,
            max_eval=iterations,
            history_size=50,
            line_search_fn="strong_wolfe",
        )
        if iterations:
            opt.step(evaluate)
    # The final state is always recorded last.
    with torch.no_grad(), precision_context(cfg.optim.precision, x.device):
        total, terms = objective(x * mask)
    history["total"].append(total.float())
    for k, v in terms.items():
        history[k].append(v.float())
    return history


def precision_context(precision: str, device: torch.device) -> torch.autocast:
    """The arithmetic of the objective: ``optim.precision = "bf16"`` runs the network, the
    Gram products and the terms under bfloat16 autocast (the spectrogram being optimised, the
    targets and the optimiser stay float32); "fp32" leaves everything float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def transfer_batch(
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    cfg: JobConfig,
    *,
    seeds: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    model: AudioAlexNet | None = None,
    progress: Progress | None = None,
) -> list[TransferResult]:
    """Style-transfer each ``(contents[i], styles[i])`` pair (16 kHz mono float arrays).

    Returns one :class:`TransferResult` per pair, its audio as long as its content. A pair whose
    loss becomes non-finite is returned with ``error`` set; the others are unaffected.
    """
    if len(contents) != len(styles) or not contents:
        raise ValueError("contents and styles must be non-empty and of equal length")
    seeds = list(seeds) if seeds is not None else [cfg.optim.seed] * len(contents)
    stft = cfg.stft
    for kind, items in (("content", contents), ("style", styles)):
        for i, audio in enumerate(items):
            if len(audio) < stft.win_length:
                raise TransferError(
                    f"{kind} #{i}: too short ({len(audio)} samples; one frame needs "
                    f"{stft.win_length})"
                )
    dev = pick_device(device)
    width = model.width if model is not None else network_width(cfg)  # before it is built
    window = _window_frames(cfg)
    long = [window is not None and num_frames(len(c), stft) > window for c in contents]
    content_frames = max(min(num_frames(len(c), stft), window or 10**9) for c in contents)
    style_frames = max(num_frames(len(s), stft) for s in styles)
    n_short = sum(not x for x in long)
    check_memory(1 if dev.type == "cpu" or not n_short else n_short, stft.n_bins,
                 content_frames, width, dev, style_frames)
    net = model.to(dev) if model is not None else resolve_model(cfg, dev)
    results: list[TransferResult | None] = [None] * len(contents)
    for i in (i for i, x in enumerate(long) if x):  # long content: window by window, alone
        results[i] = _transfer_windowed(contents[i], styles[i], cfg, seeds[i], dev, net,
                                        progress)
    short = [i for i, x in enumerate(long) if not x]
    if dev.type == "cpu":  # one pair at a time: bit-identical whatever the batch
        for i in short:
            results[i] = _transfer_group([contents[i]], [styles[i]], cfg, [seeds[i]], dev,
                                         net, progress)[0]
    elif short:
        group = _transfer_group([contents[i] for i in short], [styles[i] for i in short], cfg,
                                [seeds[i] for i in short], dev, net, progress)
        for i, r in zip(short, group):
            results[i] = r
    return results  # type: ignore[return-value]


def _window_frames(cfg: JobConfig) -> int | None:
    """Frames per window (None: whole inputs)."""
    if cfg.optim.window_s <= 0:
        return None
    return int(round(cfg.optim.window_s * cfg.stft.sample_rate / cfg.stft.hop_length))


def _transfer_windowed(content: np.ndarray, style: np.ndarray, cfg: JobConfig, seed: int,
                       dev: torch.device, net: AudioAlexNet, progress: Progress | None
                       ) -> TransferResult:
    """One long pair: each window of the content optimised alone (window k from seed + k)
    against the whole style, the windows joined by cross-faded overlap-add, then one
    Griffin-Lim over the whole (:mod:`hpc_nst.engine.windows`)."""
    stft = cfg.stft
    t0 = time.perf_counter()
    c_spec = log_magnitude(torch.as_tensor(content, dtype=torch.float32), stft)
    s_spec = log_magnitude(torch.as_tensor(style, dtype=torch.float32), stft)
    n = c_spec.shape[-1]
    overlap = int(round(cfg.optim.window_overlap_s * stft.sample_rate / stft.hop_length))
    spans = win.spans(n, _window_frames(cfg) or n, overlap)
    style_t, s_len = s_spec[None].to(dev), torch.tensor([s_spec.shape[-1]], device=dev)
    outs, inits, curves = [], [], []
    for k, (a, b) in enumerate(spans):
        part = c_spec[:, a:b].contiguous()
        objective = Objective.build(net, cfg.loss, part[None].to(dev),
                                    torch.tensor([b - a], device=dev), style_t, s_len,
                                    span=(a, b, n))
        init = initial_spectrogram(part, seed + k, cfg)
        x = init[None].to(dev).clone().requires_grad_(True)
        mask = torch.ones(1, 1, b - a, device=dev)
        history = _optimise(x, objective, cfg, mask, progress)
        outs.append(x.detach()[0].clamp_min(0.0).cpu())
        inits.append(init)
        curves.append({k2: torch.stack(v, dim=1)[0].cpu().numpy() for k2, v in history.items()})
    t2 = time.perf_counter()
    output = win.join(outs, spans, n)
    gl_audio, convergence = _griffin_lim_per_length(magnitude_from_log(output[None]),
                                                    [len(content)], [seed], cfg)
    t3 = time.perf_counter()
    # Loss curves: the frame-weighted mean of the windows' curves (L-BFGS may record a
    # different number of evaluations per window: shorter curves hold their last value).
    longest = max(len(c["total"]) for c in curves)
    curves = [{k: np.concatenate([v, np.repeat(v[-1:], longest - len(v))]) for k, v in c.items()}
              for c in curves]
    sizes = np.array([b - a for a, b in spans], dtype=np.float64)
    losses = {k: (sum(c[k] * w for c, w in zip(curves, sizes)) / sizes.sum()).astype(
        np.float32) for k in curves[0]}
    iters = max(cfg.optim.iterations, 1) * len(spans)
    timings = {"features_s": 0.0, "optimise_s": t2 - t0, "griffin_lim_s": t3 - t2,
               "ms_per_iteration": 1000 * (t2 - t0) / iters, "windows": float(len(spans))}
    return TransferResult(
        audio=limit_peak(gl_audio[0][: len(content)].cpu().numpy().astype(np.float32)),
        output=output.numpy(), init=win.join(inits, spans, n).numpy(),
        content=c_spec.numpy(), style=s_spec.numpy(), losses=losses,
        spectral_convergence=convergence[0], seed=int(seed), device=str(dev),
        timings=timings, error=divergence(losses))


def _griffin_lim_per_length(magnitude: torch.Tensor, n_samples: list[int], seeds: list[int],
                            cfg: JobConfig) -> tuple[list[torch.Tensor], list[float]]:
    """Griffin-Lim of each item at its own length, the items of one length together, each
    item's initial phase from its own seed: audio and spectral convergence per item."""
    audio: list[torch.Tensor] = [torch.empty(0)] * len(n_samples)
    convergence = [0.0] * len(n_samples)
    for n in sorted(set(n_samples)):
        idx = [i for i, m in enumerate(n_samples) if m == n]
        frames = num_frames(n, cfg.stft)
        gl = griffin_lim(magnitude[idx][..., :frames], cfg.stft, length=n,
                         iterations=cfg.griffin_lim.iterations,
                         momentum=cfg.griffin_lim.momentum, seed=[seeds[i] for i in idx])
        for k, i in enumerate(idx):
            audio[i] = gl.audio[k]
            convergence[i] = float(gl.spectral_convergence[k])
    return audio, convergence


def _transfer_group(
    contents: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    cfg: JobConfig,
    seeds: list[int],
    dev: torch.device,
    net: AudioAlexNet,
    progress: Progress | None,
) -> list[TransferResult]:
    """Optimise the given pairs together on ``dev`` and resynthesise them."""
    stft = cfg.stft
    t0 = time.perf_counter()
    c_specs = [log_magnitude(torch.as_tensor(a, dtype=torch.float32), stft) for a in contents]
    s_specs = [log_magnitude(torch.as_tensor(a, dtype=torch.float32), stft) for a in styles]
    content, c_len = _stack(c_specs)
    style, s_len = _stack(s_specs)
    content, style, c_len, s_len = content.to(dev), style.to(dev), c_len.to(dev), s_len.to(dev)
    objective = Objective.build(net, cfg.loss, content, c_len, style, s_len)
    init, _ = _stack([initial_spectrogram(c, s, cfg) for c, s in zip(c_specs, seeds)])
    init = init.to(dev)
    mask = (torch.arange(content.shape[-1], device=dev)[None, :] < c_len[:, None]).to(
        content.dtype
    )[:, None, :]
    x = init.clone().requires_grad_(True)
    t1 = time.perf_counter()
    history = _optimise(x, objective, cfg, mask, progress)
    t2 = time.perf_counter()
    result = (x.detach() * mask).clamp_min(0.0)
    n_samples = [len(a) for a in contents]
    gl_audio, convergence = _griffin_lim_per_length(magnitude_from_log(result), n_samples,
                                                    seeds, cfg)
    t3 = time.perf_counter()
    curves = {k: torch.stack(v, dim=1).cpu().numpy() for k, v in history.items()}
    n_iter = max(cfg.optim.iterations, 1)
    timings = {
        "features_s": t1 - t0,
        "optimise_s": t2 - t1,
        "griffin_lim_s": t3 - t2,
        "ms_per_iteration": 1000 * (t2 - t1) / n_iter,
    }
    results = []
    for i, n in enumerate(n_samples):
        frames = num_frames(n, stft)
        pair_curves = {k: v[i].astype(np.float32) for k, v in curves.items()}
        audio = limit_peak(gl_audio[i][:n].cpu().numpy().astype(np.float32))
        results.append(
            TransferResult(
                audio=audio,
                output=result[i, :, :frames].cpu().numpy(),
                init=init[i, :, :frames].cpu().numpy(),
                content=c_specs[i].numpy(),
                style=s_specs[i].numpy(),
                losses=pair_curves,
                spectral_convergence=convergence[i],
                seed=int(seeds[i]),
                device=str(dev),
                timings=dict(timings),
                error=divergence(pair_curves),
                group_pairs=len(n_samples),
            )
        )
    return results
