"""Distances of an output to a ground-truth target (Cífka et al. 2021), plus EQ-proof variants.

Every distance first pads or truncates the output to the target's length (as Cífka et al. do).

- :func:`lsd` (dB), exactly their log-spectral distance: each signal RMS-normalised
  (``x / (rms + eps32)``), librosa mel power spectrogram (``n_fft=2048, hop_length=512,
  n_mels=128``, Hann, centred), ``power_to_db`` (``ref=1, amin=1e-10, top_db=80``); per mel
  band the RMS over time of the difference; mean over bands.
- :func:`lsd_dynamics` (dB): the same, after removing each band's time-mean from both dB
  spectrograms. A static EQ (or gain) adds a constant per band, so it cannot lower this one.
- :func:`timbre_distance`: cosine distance ``1 - cos(m_out, m_tgt)`` between the time-means of
  MFCCs 1-12 (librosa ``mfcc``, ``n_mfcc=13, hop_length=500``, coefficient 0 dropped) - the input
  of Cífka et al.'s triplet network, without the network. In [0, 2]; a static EQ can fool it.
- :func:`dynamics_distance` (dB): the dynamics-only timbre distance. Descriptor per signal, on
  the RMS-normalised mean-removed dB mel spectrogram ``D`` above: per band the standard deviation
  over time and the mean absolute frame-to-frame change (``2 x 128`` values: modulation depth,
  onsets and decays); the distance is the RMS of the descriptor difference. Gain and static EQ
  leave it unchanged; it compares how each band moves, not its average level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
MEL = {"n_fft": 2048, "hop_length": 512, "n_mels": 128}
DB = {"ref": 1.0, "amin": 1e-10, "top_db": 80.0}
MFCC = {"n_mfcc": 13, "hop_length": 500}


def normalize_power(audio: np.ndarray) -> np.ndarray:
    """``audio / (RMS + float32 eps)`` (silence stays silent)."""
    a = np.asarray(audio, dtype=np.float32)
    return a / (np.sqrt(np.mean(a.astype(np.float64) ** 2)) + np.finfo(np.float32).eps)


def pad_or_truncate(audio: np.ndarray, n: int) -> np.ndarray:
    """``audio`` zero-padded or cut to ``n`` samples."""
    a = np.asarray(audio, dtype=np.float32)
    return a[:n] if len(a) >= n else np.pad(a, (0, n - len(a)))


def mel_db(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """RMS-normalised log-mel power spectrogram in dB, ``(128, frames)``."""
    import librosa

    spec = librosa.feature.melspectrogram(y=normalize_power(audio), sr=sr, **MEL)
    return librosa.power_to_db(spec, **DB)


def band_db(audio: np.ndarray, sr: int = SAMPLE_RATE, mel: dict | None = None,
            floor_db: float = DB["top_db"]) -> np.ndarray:
    """Log-mel in dB as :func:`mel_db`, but floored per band at the band's own max - 80 dB.

    A static EQ or gain shifts a band's values and its floor alike, so after removing each
    band's time-mean the result does not depend on them. ``mel`` (librosa melspectrogram
    settings, default :data:`MEL`) and ``floor_db`` serve the EQ-proof judge.
    """
    import librosa

    spec = librosa.feature.melspectrogram(y=normalize_power(audio), sr=sr, **(mel or MEL))
    db = 10.0 * np.log10(np.maximum(spec, DB["amin"]))
    return np.maximum(db, db.max(axis=1, keepdims=True) - floor_db)


def mfcc_mean(audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Time-mean of MFCCs 1-12 (coefficient 0, the level, dropped)."""
    import librosa

    mfcc = librosa.feature.mfcc(y=np.asarray(audio, dtype=np.float32), sr=sr, **MFCC)
    return mfcc[1:].mean(axis=1)


def dynamics_descriptor(db: np.ndarray) -> np.ndarray:
    """Per band: std over time and mean |frame-to-frame change| of a dB spectrogram."""
    centred = db - db.mean(axis=1, keepdims=True)
    flux = np.abs(np.diff(centred, axis=1)).mean(axis=1) if db.shape[1] > 1 else np.zeros(len(db))
    return np.concatenate([centred.std(axis=1), flux])


@dataclass(frozen=True)
class Features:
    """What the target distances need of one signal (compute a target's once, reuse it)."""

    n_samples: int
    mel_db: np.ndarray
    band_db: np.ndarray
    mfcc: np.ndarray
    dynamics: np.ndarray


def features(audio: np.ndarray, sr: int = SAMPLE_RATE, n_samples: int | None = None) -> Features:
    """Features of ``audio`` padded or truncated to ``n_samples`` (default: its own length)."""
    a = pad_or_truncate(audio, len(audio) if n_samples is None else n_samples)
    band = band_db(a, sr)
    return Features(len(a), mel_db(a, sr), band, mfcc_mean(a, sr), dynamics_descriptor(band))


def _band_rms_mean(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sqrt(np.mean((a - b) ** 2, axis=1))))


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 0.0
    if na == 0.0 or nb == 0.0:
        return 1.0
    return float(1.0 - np.dot(a, b) / (na * nb))


def compare(out: Features, target: Features) -> dict[str, float]:
    """Every target distance of ``out`` (computed at the target's length) to ``target``."""
    if out.n_samples != target.n_samples:
        raise ValueError("compute the output's features at the target's length (n_samples)")
    centred = [d - d.mean(axis=1, keepdims=True) for d in (out.band_db, target.band_db)]
    return {
        "lsd_db": _band_rms_mean(out.mel_db, target.mel_db),
        "lsd_dynamics_db": _band_rms_mean(*centred),
        "timbre_mfcc": _cosine_distance(out.mfcc, target.mfcc),
        "timbre_dynamics_db": float(np.sqrt(np.mean((out.dynamics - target.dynamics) ** 2))),
    }


def _pair(output: np.ndarray, target: np.ndarray, sr: int) -> dict[str, float]:
    return compare(features(output, sr, len(target)), features(target, sr))


def lsd(output: np.ndarray, target: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Log-spectral distance in dB (Cífka et al. 2021)."""
    return _pair(output, target, sr)["lsd_db"]


def lsd_dynamics(output: np.ndarray, target: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """LSD after removing each mel band's time-mean (static EQ and gain invariant), dB."""
    return _pair(output, target, sr)["lsd_dynamics_db"]


def timbre_distance(output: np.ndarray, target: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Cosine distance between mean MFCC 1-12 vectors."""
    return _pair(output, target, sr)["timbre_mfcc"]


def dynamics_distance(output: np.ndarray, target: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Dynamics-only timbre distance (static EQ and gain invariant), dB."""
    return _pair(output, target, sr)["timbre_dynamics_db"]
