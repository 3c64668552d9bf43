"""PNG figures of one pair: the paper's four panels and the loss curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hpc_nst.config import STFTConfig
from hpc_nst.engine.figure import PANELS, four_panel_figure
from hpc_nst.fsutil import atomic_write


def pair_figure(spectrograms: dict[str, np.ndarray], path: Path, stft: STFTConfig,
                title: str | None = None, optimised: bool = True) -> Path:
    """Initial noise, content, style and result (the store's ``init/content/style/output``);
    for a method that does not optimise (no loss records: its ``init`` is its output),
    the last three only."""
    order = ("init", "content", "style", "output")[0 if optimised else 1:]
    return four_panel_figure([spectrograms[k] for k in order], path, stft, title=title,
                             titles=PANELS[0 if optimised else 1:])


def loss_figure(losses: np.ndarray, records: int, terms: Sequence[str], path: Path,
                record_every: int = 1, title: str | None = None) -> Path:
    """Each loss term against the iteration (log scale when all values are positive).

    The last record is the final state, drawn at the iteration after the last recorded one.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.0, 3.0))
    x = np.arange(records, dtype=np.float64) * max(record_every, 1)
    positive = True
    for k, term in enumerate(terms):
        y = np.asarray(losses[k, :records], dtype=np.float64)
        if not np.isfinite(y).any():
            continue
        positive &= bool(np.all(y[np.isfinite(y)] > 0))
        ax.plot(x, y, label=term, lw=1.5 if term == "total" else 1.0)
    if positive:
        ax.set_yscale("log")
    ax.set_xlabel("Iteration")
    ax.set_ylabel("Loss")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=90))  # never a partial image
    plt.close(fig)
    return path
