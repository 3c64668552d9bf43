"""Training of the post-filter: the loss falls on a toy task, the record says what was done,
and the same seed gives the same weights."""

from __future__ import annotations

import torch

from hpc_nst.models.post_filter import N_MELS, STYLE_FEATURES
from hpc_nst.train.post_filter import PostFilterTraining, losses, train_post_filter


def _toy(n: int = 20, frames: int = 64) -> tuple[torch.Tensor, ...]:
    """Targets: the inputs with a per-band tremolo added; styles announce its depth."""
    g = torch.Generator().manual_seed(0)
    x = -30.0 + 5.0 * torch.randn(n, N_MELS, frames, generator=g)
    depth = torch.rand(n, generator=g) * 6.0
    wave = torch.sin(torch.arange(frames) * 0.8)
    z = x + depth[:, None, None] * wave
    s = 10.0 * depth[:, None].repeat(1, STYLE_FEATURES)  # dB-scale, as style_statistics
    return x, z, s


def test_training_lowers_the_loss_and_is_deterministic():
    x, z, s = _toy()
    opts = PostFilterTraining(epochs=10, batch=4, threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        model, record = train_post_filter(x, z, s, opts)
        assert torch.get_num_threads() == 2  # the process's threads given back
    finally:
        torch.set_num_threads(before)
    with torch.no_grad():
        after = losses(model, x, z, s, opts)[0]
    assert float(after) < record["before"]["val_l1_db"] + opts.stats_weight * \
        record["before"]["val_stats_db"]
    assert record["examples"] == 20 and record["validation"] == 2
    assert [h["epoch"] for h in record["history"]] == [5, 10]
    again, _ = train_post_filter(x, z, s, opts)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_the_texture_term_is_a_separate_weighted_term():
    x, z, s = _toy(n=4)
    model = train_post_filter(x, z, s, PostFilterTraining(epochs=1, batch=4, threads=1))[0]
    with torch.no_grad():
        plain = losses(model, x, z, s, PostFilterTraining())[0]
        weighted = losses(model, x, z, s, PostFilterTraining(texture_weight=1.0))[0]
        same = losses(model, z, z, s, PostFilterTraining(texture_weight=1.0))
    assert float(weighted) > float(plain) + 0.1  # the toy's tremolo moves its statistics
    assert float(same[0]) < float(plain)  # the target itself: only the gains' own error left
