"""Fixtures for the batch engine: small audio files, manifests, a tiny job, a local cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hpc_nst.config import JobConfig, load_job

SR = 16000
#: The ``--set`` overrides of a job that takes well under a second per pair.
TINY = ["iterations=3", "griffin_lim_iterations=2", "model=random", "width=4"]


def tone(f0: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * f0 * t) * np.exp(-t)).astype(np.float32)


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def tiny() -> JobConfig:
    return load_job(overrides=dict(s.split("=") for s in TINY))


@pytest.fixture
def audio_dir(tmp_path: Path) -> Path:
    """Good files of mixed lengths, plus broken ones of every kind."""
    d = tmp_path / "audio"
    d.mkdir()
    for name, f0, sec in [("a", 220, 0.5), ("b", 330, 0.8), ("c", 440, 0.3), ("d", 550, 1.1)]:
        sf.write(d / f"{name}.wav", tone(f0, sec), SR)
    t = np.arange(int(0.8 * 44100)) / 44100
    sf.write(d / "e44k.flac", (0.3 * np.sin(2 * np.pi * 262 * t)).astype(np.float32), 44100)
    (d / "garbage.wav").write_bytes(b"RIFF this is not audio at all")
    sf.write(d / "short.wav", np.zeros(100, np.float32), SR)
    sf.write(d / "full.flac", tone(300, 1.0), SR)
    raw = (d / "full.flac").read_bytes()
    (d / "truncated.flac").write_bytes(raw[: len(raw) // 2])  # header fine, data cut off
    (d / "full.flac").unlink()
    nan = tone(200, 0.5)
    nan[10] = np.nan
    sf.write(d / "nan.wav", nan, SR, subtype="FLOAT")
    return d


@pytest.fixture(scope="module")
def local_client():
    """One LocalCluster (2 worker processes, nannies) shared by a module's end-to-end tests."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client
