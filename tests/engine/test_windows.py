"""Long content in overlapping windows: placement, cross-fade weights, a seamless 60 s run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpc_nst.config import load_job
from hpc_nst.engine import windows as win
from hpc_nst.engine.transfer import transfer_batch

SR = 16000


@pytest.mark.parametrize(("n", "window", "overlap"), [(6001, 1000, 100), (1000, 1000, 100),
                                                      (2500, 1000, 0), (1901, 1000, 100)])
def test_windows_cover_everything_and_weights_sum_to_one(n, window, overlap):
    spans = win.spans(n, window, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(b - a == min(window, n) for a, b in spans)
    assert all(a2 <= b1 for (_, b1), (a2, _) in zip(spans, spans[1:]))  # no gap
    total = torch.zeros(n)
    for (a, b), w in zip(spans, win.weights(spans, n)):
        total[a:b] += w
        assert (w >= 0).all() and (w <= 1).all()
    torch.testing.assert_close(total, torch.ones(n))
    # a constant spectrogram stays constant through the join
    parts = [torch.full((3, b - a), 2.0) for a, b in spans]
    torch.testing.assert_close(win.join(parts, spans, n), torch.full((3, n), 2.0))


def test_cross_fade_is_linear_over_the_overlap():
    spans = win.spans(1900, 1000, 100)
    joined = win.join([torch.zeros(1, 1000), torch.ones(1, 1000)], spans, 1900)[0]
    a = spans[1][0]
    ramp = joined[a:1000]
    assert joined[:a].abs().max() == 0 and (joined[1000:] == 1).all()
    assert (ramp[1:] > ramp[:-1]).all() and 0 < ramp[0] < 0.05 and 0.95 < ramp[-1] < 1


@pytest.mark.slow
def test_a_60_s_input_runs_in_windows_without_seams():
    t = np.arange(60 * SR) / SR
    # a slow glide: the spectrogram changes smoothly, so a seam would stand out
    content = (0.3 * np.sin(2 * np.pi * (200 * t + 2 * t**2))).astype(np.float32)
    style = (0.3 * np.sin(2 * np.pi * 440 * t[: 3 * SR])).astype(np.float32)
    short = content[: 2 * SR].copy()
    cfg = load_job(overrides={"iterations": 4, "width": 4, "griffin_lim_iterations": 4,
                              "init": "content", "window_s": 10, "model": "random"})
    long_res, short_res = transfer_batch([content, short], [style, style], cfg, seeds=[1, 2],
                                         device="cpu")
    assert len(long_res.audio) == len(content) and np.isfinite(long_res.audio).all()
    assert long_res.timings["windows"] == 7  # 10 s windows, 9 s apart, over 60 s
    x = long_res.output
    assert x.shape == long_res.content.shape
    flux = np.abs(np.diff(x, axis=1)).mean(axis=0)
    spans = win.spans(x.shape[1], 1000, 100)
    seams = np.zeros(len(flux), bool)
    for (a, _), (_, b) in zip(spans[1:], spans[:-1]):
        seams[a - 2:b + 2] = True
    assert flux[seams].max() <= 1.5 * np.percentile(flux[~seams], 99.9)
    # the audio has no click at the window joins either
    hp = np.abs(np.diff(long_res.audio))
    hop = cfg.stft.hop_length
    edges = np.concatenate([hp[a * hop - 800:a * hop + 800] for a, _ in spans[1:]])
    assert edges.max() <= 1.5 * np.percentile(hp, 99.99)
    # windowing a long pair changes nothing for a short companion
    alone = transfer_batch([short], [style], cfg, seeds=[2], device="cpu")[0]
    np.testing.assert_array_equal(alone.audio, short_res.audio)
    again = transfer_batch([content], [style], cfg, seeds=[1], device="cpu")[0]
    np.testing.assert_array_equal(again.audio, long_res.audio)


def test_each_window_follows_its_part_of_the_styles_envelope():
    """A window's temporal-envelope target is its part of the whole input's (the style's
    contour once over the input), not the whole style squeezed into every window."""
    from hpc_nst.engine.objective import Objective
    from hpc_nst.models.checkpoint import resolve_model

    cfg = load_job(overrides={"width": 4, "model": "random"})
    net = resolve_model(cfg)
    gen = torch.Generator().manual_seed(0)
    content = torch.rand(1, 257, 300, generator=gen) * 3
    style = torch.linspace(0.0, 4.0, 100).expand(1, 257, 100).contiguous()  # a fade-in
    lengths = torch.tensor([100])
    whole = Objective.build(net, cfg.loss, content, torch.tensor([300]), style, lengths)
    target = whole.targets["envelope"]["envelope"]
    for a, b in ((0, 100), (100, 200), (170, 300)):
        part = Objective.build(net, cfg.loss, content[..., a:b].contiguous(),
                               torch.tensor([b - a]), style, lengths, span=(a, b, 300))
        torch.testing.assert_close(part.targets["envelope"]["envelope"], target[:, a:b])
    alone = Objective.build(net, cfg.loss, content[..., :100].contiguous(), torch.tensor([100]),
                            style, lengths)  # (what every window used to get)
    assert not torch.allclose(alone.targets["envelope"]["envelope"], target[:, :100])
