"""Shared fixtures: small real signals and a tiny, fast job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hpc_nst.config import JobConfig, load_job

SR = 16000


def harmonic_tone(f0: float, seconds: float, partials: int = 8, decay: float = 2.0) -> np.ndarray:
    """A decaying harmonic tone (plucked-string-like), float32 at 16 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, partials + 1))
    return (0.3 * tone * np.exp(-decay * t)).astype(np.float32)


@pytest.fixture(scope="session")
def soundfont() -> Path:
    """The GM SoundFont with working FluidSynth bindings, or a skip saying what is missing."""
    from hpc_nst.data.soundfont import default_soundfont

    try:
        path = default_soundfont()
    except FileNotFoundError as exc:
        pytest.skip(f"needs a GM SoundFont: {exc}")
    pytest.importorskip("pretty_midi", reason="needs pretty_midi")
    pytest.importorskip(
        "fluidsynth", reason="needs pyfluidsynth and libfluidsynth (Debian libfluidsynth3)"
    )
    return path


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    torch.manual_seed(0)


@pytest.fixture
def tiny_job() -> JobConfig:
    """A job that runs in well under a second on the CPU."""
    return load_job(
        overrides={
            "model": "random",
            "width": "4",
            "iterations": "5",
            "griffin_lim_iterations": "4",
        }
    )


@pytest.fixture
def wav_pair(tmp_path):
    """A content (harmonic 220 Hz) and style (440 Hz decaying sine) WAV pair on disk."""
    content = tmp_path / "content.wav"
    style = tmp_path / "style.wav"
    sf.write(content, harmonic_tone(220.0, 0.6), SR)
    sf.write(style, harmonic_tone(440.0, 0.5, partials=1), SR)
    return content, style
