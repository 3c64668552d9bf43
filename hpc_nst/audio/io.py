"""Reading and writing audio: any soundfile format, any rate, downmixed and resampled with soxr."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from hpc_nst.errors import AudioError  # noqa: F401 (re-exported)
from hpc_nst.fsutil import atomic_write

#: A decoded input whose peak is at most this (-100 dBFS) is silence.
SILENCE_PEAK = 1e-5


def is_silent(audio: np.ndarray) -> bool:
    """No sample above :data:`SILENCE_PEAK` (a stereo file whose channels cancel reads so
    after :func:`load_audio`'s mix to mono)."""
    return audio.size == 0 or float(np.abs(audio).max()) <= SILENCE_PEAK


def load_audio(path: str | Path, sample_rate: int = 16000, min_samples: int = 1) -> np.ndarray:
    """Read ``path`` as mono float32 at ``sample_rate``.

    Multichannel audio is averaged to mono; other rates are resampled with soxr (VHQ).
    Raises :class:`AudioError` for a missing, unreadable, empty, non-finite or too-short file.
    Silent audio is allowed (the engine handles it without NaN).
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    if not path.is_file():  # reading a FIFO would block forever
        raise AudioError(f"{path}: not a regular file (a pipe, socket or device)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise AudioError(f"{path}: unreadable audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: contains no samples")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = soxr.resample(mono, rate, sample_rate, quality="VHQ").astype(np.float32)
    if mono.shape[0] < min_samples:
        raise AudioError(
            f"{path}: too short ({mono.shape[0]} samples at {sample_rate} Hz; "
            f"at least {min_samples} needed for one STFT frame)"
        )
    return np.ascontiguousarray(mono, dtype=np.float32)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int = 16000) -> None:
    """Write ``audio`` atomically (temporary file then rename); format from the suffix."""
    data = np.asarray(audio, dtype=np.float32)
    atomic_write(path, lambda tmp: sf.write(str(tmp), data, sample_rate))
