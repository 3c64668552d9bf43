"""The paper's four-panel figure: initial noise, content, style and result spectrograms."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hpc_nst.config import STFTConfig
from hpc_nst.fsutil import atomic_write

PANELS = ("Initial noise", "Content", "Style", "Result")


def four_panel_figure(
    spectrograms: Sequence[np.ndarray],
    path: str | Path,
    stft: STFTConfig,
    title: str | None = None,
    titles: Sequence[str] = PANELS,
) -> Path:
    """Save log-magnitude panels (0-8 kHz, time in seconds) side by side as PNG/SVG/PDF."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the colour scale of the inputs and the result (not of the initial noise, when drawn)
    scaled = [s for s, name in zip(spectrograms, titles) if name != PANELS[0]] or spectrograms
    vmax = max(float(np.max(s)) for s in scaled) or 1.0
    fig, axes = plt.subplots(1, len(spectrograms), figsize=(3.2 * len(spectrograms), 3.0))
    nyquist_khz = stft.sample_rate / 2000
    for ax, spec, name in zip(np.atleast_1d(axes), spectrograms, titles):
        seconds = spec.shape[-1] * stft.hop_length / stft.sample_rate
        ax.imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=0.0,
            vmax=vmax,
            extent=(0.0, seconds, 0.0, nyquist_khz),
        )
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("Time (s)")
        ax.set_ylim(0, min(8.0, nyquist_khz))
    np.atleast_1d(axes)[0].set_ylabel("Frequency (kHz)")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110))  # never a partial image
    plt.close(fig)
    return path
