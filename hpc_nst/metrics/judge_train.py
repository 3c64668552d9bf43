"""Train the EQ-proof style judge (:mod:`hpc_nst.metrics.judge`) on SoundFont renders.

Data: for every program of :data:`hpc_nst.data.triplets.MELODIC_PROGRAMS`, ``renders`` long
random melodies in the program's range (the triplet generator's melody model, seeds disjoint
from the benchmark's: ``(seed, 9000 + program, k)``), cut into 2.56 s windows (and one 8 s window
per render); a fraction of the windows is passed through Griffin-Lim (the project's STFT, random
phase, 32 iterations) so the judge does not take resynthesis artefacts for an instrument. The
last render of each program is held out for validation; the L2 strength is chosen on it, then
the judge is refitted on everything. Several SoundFonts may be given (the same melodies rendered
from each). Deterministic for a seed and a list of SoundFonts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hpc_nst.metrics.judge import FEATURE_VERSION, SAMPLE_RATE, Judge, judge_features

log = logging.getLogger(__name__)
RENDER_SECONDS = 24.0
WINDOW_S = 2.56
LONG_WINDOW_S = 8.0
L2_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def _windows(audio: np.ndarray) -> list[np.ndarray]:
    n = int(WINDOW_S * SAMPLE_RATE)
    out = [audio[i:i + n] for i in range(0, len(audio) - n + 1, n)]
    long = int(LONG_WINDOW_S * SAMPLE_RATE)
    if len(audio) >= long:
        out.append(audio[:long])
    return [w for w in out if np.abs(w).max() > 1e-3]


def _griffin_lim(audio: np.ndarray, seed: int) -> np.ndarray:
    import torch

    from hpc_nst.audio.griffin_lim import griffin_lim
    from hpc_nst.audio.spectrogram import complex_stft
    from hpc_nst.config import STFTConfig

    stft = STFTConfig()
    mag = complex_stft(torch.from_numpy(audio.astype(np.float32))[None], stft).abs()
    return griffin_lim(mag, stft, len(audio), iterations=32, seed=seed).audio[0].numpy()


def render_set(programs: Sequence[int], renders: int, seed: int, soundfont: str | Path | None,
               gl_fraction: float = 0.5, progress: Callable[[str], None] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features ``(n, f)``, class indices ``(n,)`` and render numbers ``(n,)``."""
    from hpc_nst.data.soundfont import playable_range, render_notes
    from hpc_nst.data.triplets import melody

    feats, labels, groups = [], [], []
    for c, program in enumerate(programs):
        lo, hi = playable_range(program)
        for k in range(renders):
            rng = np.random.default_rng([seed, 9000 + program, k])
            notes = melody(rng, max(lo, 36), min(hi, 96), RENDER_SECONDS)
            audio = render_notes(notes, program, SAMPLE_RATE, soundfont, duration=RENDER_SECONDS)
            for w in _windows(audio):
                if rng.random() < gl_fraction:
                    w = _griffin_lim(w, seed=int(rng.integers(2**31)))
                feats.append(judge_features(w))
                labels.append(c)
                groups.append(k)
        if progress is not None:
            progress(f"{Path(soundfont).name if soundfont else 'default SoundFont'}: "
                     f"rendered program {program} ({c + 1}/{len(programs)})")
    return np.asarray(feats), np.asarray(labels), np.asarray(groups)


def fit_logistic(x: np.ndarray, y: np.ndarray, classes: int, l2: float) -> tuple[np.ndarray,
                                                                                   np.ndarray]:
    """Multinomial logistic regression (L-BFGS, float64, deterministic); ``(W, b)``."""
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    w = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, tolerance_grad=1e-7,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w.T + b, yt) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def train_judge(programs: Sequence[int] | None = None, renders: int = 3, seed: int = 0,
                soundfonts: Sequence[str | Path] | None = None, gl_fraction: float = 0.5,
                progress: Callable[[str], None] | None = None) -> tuple[Judge, dict]:
    """Render, choose L2 on the held-out render, refit on all; the judge and its metrics.

    ``soundfonts``: the GM SoundFonts to render every program from (default: FluidR3 alone);
    the same melodies from each, so the judge learns what the instruments share across
    sample sets rather than one set's recordings. The last render of every program in every
    SoundFont is the validation set."""
    from hpc_nst.data.soundfont import GM_PROGRAM_NAMES, check_soundfont, default_soundfont
    from hpc_nst.data.triplets import MELODIC_PROGRAMS

    programs = tuple(MELODIC_PROGRAMS if programs is None else programs)
    if renders < 2:
        raise ValueError("renders must be >= 2 (the last one is held out for validation)")
    if isinstance(soundfonts, (str, Path)):
        soundfonts = [soundfonts]
    fonts = ([check_soundfont(Path(f), "a SoundFont to train on") for f in soundfonts]
             if soundfonts else [default_soundfont()])  # every one checked before rendering
    parts = [render_set(programs, renders, seed, f, gl_fraction, progress) for f in fonts]
    x, y, g = (np.concatenate([part[i] for part in parts]) for i in range(3))
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    train, val = g < renders - 1, g == renders - 1
    scores = {}
    for l2 in L2_GRID:
        w, b = fit_logistic(z[train], y[train], len(programs), l2)
        scores[l2] = float(np.mean(np.argmax(z[val] @ w.T + b, axis=1) == y[val]))
        log.info("judge: l2=%g validation accuracy %.3f", l2, scores[l2])
    best = max(L2_GRID, key=lambda k: (scores[k], k))
    w, b = fit_logistic(z, y, len(programs), best)
    metrics = {"validation_accuracy": scores[best], "l2": best, "windows": int(len(y)),
               "validation_by_l2": {str(k): v for k, v in scores.items()}}
    meta = {"feature_version": FEATURE_VERSION, "soundfont": " + ".join(f.name for f in fonts),
            "soundfonts": [f.name for f in fonts], "seed": seed,
            "renders": renders, "gl_fraction": gl_fraction, "programs": list(programs),
            **metrics}
    classes = tuple(GM_PROGRAM_NAMES[p] for p in programs)
    return Judge(mean, scale, w, b, classes, meta), metrics
