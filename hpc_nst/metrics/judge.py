"""The EQ-proof style judge: which instrument do the *dynamics* of a sound belong to?

A static filter (EQ) or a gain adds a constant to each band of a log spectrogram. The judge sees
only what such a filter cannot change: a log-mel spectrogram (64 bands) whose every band is
floored at its own maximum - 60 dB and then has its time-mean removed. Per band it describes
how the band moves:

- the standard deviation over time (modulation depth),
- the mean rise and the mean fall from frame to frame (attack vs decay: a harp rises fast and
  falls slowly, a bowed string rises slowly),
- the mean absolute change over 4 frames (64 ms: the slower envelope),
- the modulation power in five rate bands (0.5-2, 2-4, 4-8, 8-16, 16-31 Hz: tremolo, vibrato,
  note rate), as log power per frame,
- its correlation with the next band (do neighbouring harmonics move together);

then the same statistics averaged over the active bands (so a melody's register matters less).
The features are standardised and fed to a multinomial logistic regression trained on
SoundFont renders of random melodies (:mod:`hpc_nst.metrics.judge_train`; the shipped weights:
``hpc_nst/assets/judge.npz``, see its model card). It shares no weights with any network a
transfer job optimises, and a static gain per mel band leaves the features as they were (each
band's time-mean is removed), so the EQ baseline is judged near chance for the style. Not
exactly: a filter whose gain varies within a mel band (the ``eq`` job's per-bin one) changes
them a little (0.41 RMS in standardised units over the 32 benchmark contents; the top-1 of 5
of 32), and digital silence sits at the -100 dB clamp of the power spectrum, not at each
band's own floor, in bands whose peak is under -40 dB (docs/metrics.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
N_MELS = 64
HOP = 256  # 16 ms frames: modulation rates up to 31 Hz
MEL = {"n_fft": 1024, "hop_length": HOP, "n_mels": N_MELS}
FLOOR_DB = 60.0
SLOW_LAG = 4
RATE_BANDS_HZ = ((0.5, 2.0), (2.0, 4.0), (4.0, 8.0), (8.0, 16.0), (16.0, 31.25))
FEATURE_VERSION = 1
DEFAULT_JUDGE = Path(__file__).resolve().parents[1] / "assets" / "judge.npz"


def band_dynamics(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The band-normalised log-mel spectrogram ``(N_MELS, frames)``: floored, time-mean removed."""
    from hpc_nst.metrics.reference import band_db

    a = np.asarray(audio, dtype=np.float32)
    if sr != SAMPLE_RATE:
        import librosa

        a = librosa.resample(a, orig_sr=sr, target_sr=SAMPLE_RATE)
    db = band_db(a, SAMPLE_RATE, MEL, FLOOR_DB).astype(np.float64)
    return db - db.mean(axis=1, keepdims=True)


def _modulation_power(d: np.ndarray) -> np.ndarray:
    """Log modulation power per band in :data:`RATE_BANDS_HZ` ``(bands, len(RATE_BANDS_HZ))``."""
    frames = d.shape[1]
    power = np.abs(np.fft.rfft(d, axis=1)) ** 2 / max(frames, 1) ** 2
    rates = np.fft.rfftfreq(frames, d=HOP / SAMPLE_RATE)
    out = np.zeros((d.shape[0], len(RATE_BANDS_HZ)))
    for k, (lo, hi) in enumerate(RATE_BANDS_HZ):
        sel = (rates >= lo) & (rates < hi)
        if sel.any():
            out[:, k] = power[:, sel].sum(axis=1)
    return np.log10(out + 1e-6)


def judge_features(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """The judge's feature vector of ``audio`` (gain and static-EQ invariant)."""
    d = band_dynamics(audio, sr)
    if d.shape[1] < 2 * SLOW_LAG + 1:
        raise ValueError(f"audio too short for the judge: {d.shape[1]} frames of {HOP} samples")
    step = np.diff(d, axis=1)
    slow = np.abs(d[:, SLOW_LAG:] - d[:, :-SLOW_LAG]).mean(axis=1)
    std = d.std(axis=1)
    centred = d / (std[:, None] + 1e-6)
    corr = (centred[:-1] * centred[1:]).mean(axis=1)
    per_band = np.column_stack([
        std, np.maximum(step, 0).mean(axis=1), np.maximum(-step, 0).mean(axis=1), slow,
        _modulation_power(d), np.append(corr, 0.0),
    ])  # (bands, 10)
    active = std > 0.5  # dB: a band that moves at all
    pooled = per_band[active].mean(axis=0) if active.any() else np.zeros(per_band.shape[1])
    return np.concatenate([per_band.ravel(), pooled, [active.mean()]])


@dataclass(frozen=True)
class Judge:
    """A trained judge: standardisation, logistic-regression weights and class names."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (classes, features)
    bias: np.ndarray  # (classes,)
    classes: tuple[str, ...]
    meta: dict

    def probabilities(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        return self.probabilities_of(judge_features(audio, sr)[None])[0]

    def probabilities_of(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of a ``(n, features)`` matrix."""
        z = (features - self.mean) / self.scale @ self.weights.T + self.bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)

    def index(self, label: str) -> int | None:
        from hpc_nst.metrics.style_class import class_index

        return class_index(label, list(self.classes))

    def save(self, path: str | Path) -> Path:
        from hpc_nst.fsutil import atomic_write

        path = Path(path)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, mean=self.mean, scale=self.scale, weights=self.weights,
                                    bias=self.bias, classes=np.array(self.classes),
                                    meta=np.array(json.dumps(self.meta, sort_keys=True)))

        atomic_write(path, write)
        return path


def load_judge(path: str | Path | None = None) -> Judge:
    """The judge at ``path`` (default: the shipped one)."""
    from hpc_nst.errors import CheckpointError

    path = Path(path) if path is not None else DEFAULT_JUDGE
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            judge = Judge(z["mean"], z["scale"], z["weights"], z["bias"],
                          tuple(str(c) for c in z["classes"]), meta)
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable judge ({exc}); train one with "
                              "`hpc-nst train-judge`") from exc
    if meta.get("feature_version") != FEATURE_VERSION:
        raise CheckpointError(f"{path}: judge features v{meta.get('feature_version')}, this "
                              f"version computes v{FEATURE_VERSION}; retrain with "
                              "`hpc-nst train-judge`")
    return judge


def judge_style(judge: Judge, audio: np.ndarray, style_label: str,
                sr: int = SAMPLE_RATE) -> dict[str, object]:
    """``judge_top1`` (1.0 when the top class is the style's), ``judge_prob``, ``judge_class``."""
    idx = judge.index(style_label)
    p = judge.probabilities(audio, sr)
    top = int(np.argmax(p))
    out: dict[str, object] = {"judge_class": judge.classes[top]}
    if idx is not None:
        out.update(judge_top1=float(top == idx), judge_prob=float(p[idx]))
    return out
