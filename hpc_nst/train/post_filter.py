"""Training of the post-filter of :mod:`hpc_nst.models.post_filter` on rendered triplets.

Each example: a method's output for a triplet (``outputs/<pair_id>.npy``, e.g. ``layered``'s),
the triplet's style and its target. Loss, on floored dB log-mel: the L1 distance with each
band's time mean removed (where the notes' levels go, EQ-free), ``stats_weight`` times the L1
distance of the dynamics statistics (per band: the spread over time and the mean absolute
change at lags 1, 2, 4 frames), ``raw_weight`` times the plain L1 (keeps the gains'
means near the target's levels) and, where ``texture_weight`` is not 0, that times the L1
distance of the texture statistics (``texture_statistics``: measured on dev and not used by
the shipped weights, docs/quality.md "layered-post v2"). One tenth of the examples (a seeded
draw) is held out for validation; the figures are logged per 5 epochs. Deterministic for a
seed on one machine.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from hpc_nst.models.post_filter import (
    PostFilterNet,
    dynamics_statistics,
    log_mel,
    style_statistics,
    texture_statistics,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PostFilterTraining:
    seed: int = 101
    epochs: int = 30
    batch: int = 16
    learning_rate: float = 1e-3
    stats_weight: float = 2.0
    raw_weight: float = 0.1
    texture_weight: float = 0.0
    threads: int = 2


def load_examples(triplets: Path, outputs: Path) -> tuple[torch.Tensor, ...]:
    """(output log-mel, target log-mel, style statistics) of every triplet of the folder
    ``triplets`` (its manifest.csv) with an output in ``outputs``, cut to the shortest."""
    import pandas as pd
    import soundfile as sf

    x, z, s = [], [], []
    for row in pd.read_csv(triplets / "manifest.csv").itertuples():
        out = outputs / f"{row.pair_id}.npy"
        if not out.is_file():
            continue
        target, _ = sf.read(triplets / row.target, dtype="float32")
        style, _ = sf.read(triplets / row.style, dtype="float32")
        x.append(log_mel(np.load(out)))
        z.append(log_mel(target))
        s.append(style_statistics(style))
    if not x:
        raise ValueError(f"no outputs in {outputs} for the triplets of {triplets}")
    frames = min(m.shape[1] for m in x + z)
    return (torch.tensor(np.stack([m[:, :frames] for m in x])),
            torch.tensor(np.stack([m[:, :frames] for m in z])), torch.tensor(np.stack(s)))


def losses(model: PostFilterNet, x: torch.Tensor, z: torch.Tensor, s: torch.Tensor,
           opts: PostFilterTraining) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, band-normalised L1, statistics L1) of the filtered ``x`` against ``z``; the
    total includes the plain L1 and the texture term by their weights."""
    y = x + model(x, s)
    centred = (y - y.mean(-1, keepdim=True)) - (z - z.mean(-1, keepdim=True))
    l1 = centred.abs().mean()
    stats = (dynamics_statistics(y) - dynamics_statistics(z)).abs().mean()
    total = l1 + opts.stats_weight * stats + opts.raw_weight * (y - z).abs().mean()
    if opts.texture_weight:
        texture = (texture_statistics(y) - texture_statistics(z)).abs().mean()
        total = total + opts.texture_weight * texture
    return total, l1, stats


def train_post_filter(x: torch.Tensor, z: torch.Tensor, s: torch.Tensor,
                      opts: PostFilterTraining) -> tuple[PostFilterNet, dict[str, object]]:
    """The trained model and a record of the training (options, validation figures); torch's
    thread count is ``opts.threads`` while it trains, and what it was afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(opts.threads)
    try:
        return _train(x, z, s, opts)
    finally:
        torch.set_num_threads(threads)


def _train(x: torch.Tensor, z: torch.Tensor, s: torch.Tensor,
           opts: PostFilterTraining) -> tuple[PostFilterNet, dict[str, object]]:
    torch.manual_seed(opts.seed)
    n = len(x)
    order = torch.randperm(n)
    val, train = order[: max(n // 10, 1)], order[max(n // 10, 1):]
    model = PostFilterNet()
    optimiser = torch.optim.Adam(model.parameters(), opts.learning_rate)
    with torch.no_grad():
        _, l1_0, stats_0 = losses(model, x[val], z[val], s[val], opts)
    history = []
    for epoch in range(opts.epochs):
        perm = train[torch.randperm(len(train))]
        for i in range(0, len(perm), opts.batch):
            b = perm[i: i + opts.batch]
            loss = losses(model, x[b], z[b], s[b], opts)[0]
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if epoch % 5 == 4:
            with torch.no_grad():
                _, l1, stats = losses(model, x[val], z[val], s[val], opts)
            history.append({"epoch": epoch + 1, "val_l1_db": round(float(l1), 4),
                            "val_stats_db": round(float(stats), 4)})
            log.info("epoch %d: validation L1 %.3f dB, statistics %.3f dB", epoch + 1,
                     float(l1), float(stats))
    record = {"options": asdict(opts), "examples": n, "validation": int(len(val)),
              "before": {"val_l1_db": round(float(l1_0), 4),
                         "val_stats_db": round(float(stats_0), 4)},
              "history": history}
    return model.eval(), record
