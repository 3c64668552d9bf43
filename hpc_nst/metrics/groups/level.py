"""``level``: how loud the output is, for screening a dataset before training on it.

``level_output_dbfs`` (RMS, dB re full scale), ``peak_output_dbfs``, ``level_change_db``
(output RMS minus the content's: a transfer that lost or gained loudness) and
``silent_fraction`` (the share of 10 ms frames below -60 dBFS: a silent or broken output).
Filter an export with them, e.g. ``--where "silent_fraction < 0.5"``.
"""

from __future__ import annotations

import math

import numpy as np

from hpc_nst.metrics.groups.base import MetricGroup, MetricInputs, register_metric_group

SILENT_DBFS = -60.0
FRAME_S = 0.01


def _dbfs(value: float) -> float:
    return 20.0 * math.log10(value) if value > 0 else -math.inf


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0


def silent_fraction(audio: np.ndarray, sr: int) -> float:
    """The share of whole ``FRAME_S`` frames whose RMS is below ``SILENT_DBFS``."""
    hop = max(1, int(round(FRAME_S * sr)))
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    if not len(frames):
        return math.nan
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return float(np.mean(rms < 10 ** (SILENT_DBFS / 20)))


def level(inputs: MetricInputs) -> dict[str, float]:
    out = inputs.output
    row = {"level_output_dbfs": _dbfs(_rms(out)),
           "peak_output_dbfs": _dbfs(float(np.max(np.abs(out))) if out.size else 0.0),
           "silent_fraction": silent_fraction(out, inputs.sample_rate)}
    content = inputs.content()
    if content is not None:
        row["level_change_db"] = row["level_output_dbfs"] - _dbfs(_rms(content))
    # a silent output's -inf is no number a table can average: it is said by silent_fraction
    return {k: v if math.isfinite(v) else math.nan for k, v in row.items()}


LEVEL = register_metric_group(MetricGroup(
    "level", "output loudness, peak, change against the content, silent share",
    ("level_output_dbfs", "peak_output_dbfs", "level_change_db", "silent_fraction"), level))
