"""Tiny rendered GM datasets and a tiny trained checkpoint shared by the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hpc_nst.data.gm_dataset import render_gm_dataset
from hpc_nst.data.soundfont import default_soundfont

PROGRAMS = (0, 40, 73)  # piano, violin, flute


def _need_soundfont() -> None:
    try:
        default_soundfont()
    except FileNotFoundError as exc:
        pytest.skip(f"needs a GM SoundFont: {exc}")
    pytest.importorskip("pretty_midi", reason="needs pretty_midi")
    pytest.importorskip("fluidsynth", reason="needs pyfluidsynth and libfluidsynth")


@pytest.fixture(autouse=True)
def _one_thread():
    """Training tests run single-threaded: tiny ops, and the CPU is shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_gm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of 3 programs x 10 clips (7 train, 1 val, 2 test each)."""
    _need_soundfont()
    out = tmp_path_factory.mktemp("gm")
    return render_gm_dataset(out, PROGRAMS, per_class=10, seed=0)
