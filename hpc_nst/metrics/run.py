"""Metrics of the optimisation itself: final loss terms, spectral convergence, runtime.

- ``loss_<term>``: the last recorded value of each loss curve (the final state is always
  recorded last), NaN for methods that optimise nothing (content-copy, style-copy, eq);
- ``spectral_convergence``: ``||S - |STFT(y)||| / ||S||`` (Frobenius norms) between the
  optimised magnitude S and that of the Griffin-Lim audio y (0 = consistent spectrogram);
- ``runtime_s``: the pair's share of its batch's compute time (features + optimisation +
  Griffin-Lim, divided by the pairs of the batch) plus its own audio loading time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from hpc_nst.config import STFTConfig

COMPUTE_TIMINGS = ("features_s", "optimise_s", "griffin_lim_s")


def final_losses(curves: np.ndarray, records: int, terms: Sequence[str]) -> dict[str, float]:
    """``{"loss_<term>": last value}`` of ``(terms, records)`` curves with ``records`` valid.

    The value is taken as recorded, so a diverged pair shows NaN/Inf; no records give NaN.
    """
    out = {}
    for k, term in enumerate(terms):
        value = float(curves[k, records - 1]) if records > 0 else math.nan
        out[f"loss_{term}"] = value
    return out


def spectral_convergence(log_magnitude: np.ndarray, audio: np.ndarray, stft: STFTConfig) -> float:
    """Spectral convergence of ``audio`` to a ``log(1 + |S|)`` spectrogram ``(bins, frames)``."""
    import torch  # (here: the report's and the export's column lists import this module)

    from hpc_nst.audio.griffin_lim import spectral_convergence as sc

    mag = torch.expm1(torch.as_tensor(np.asarray(log_magnitude, dtype=np.float32)))
    return float(sc(mag, torch.as_tensor(np.asarray(audio, dtype=np.float32)), stft))


def runtime(timings: Mapping[str, float], batch_pairs: int = 1) -> float:
    """Seconds of compute attributed to one pair (see the module docstring)."""
    parts = [timings.get(k, math.nan) for k in COMPUTE_TIMINGS]
    finite = [p for p in parts if p is not None and math.isfinite(p)]
    load = timings.get("load_s", math.nan)
    if not finite and not (load is not None and math.isfinite(load)):
        return math.nan
    share = sum(finite) / max(batch_pairs, 1)
    return share + (load if load is not None and math.isfinite(load) else 0.0)
