"""The lagged Gram term: zero at its target, hears temporal order, padding-neutral, optimisable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpc_nst.config import load_job
from hpc_nst.engine.methods import run_method
from hpc_nst.engine.terms.lagged_gram import lagged_gram, layer_lags
from hpc_nst.errors import ConfigError
from hpc_nst.losses.style_transfer import gram

SR = 16000


def _rel(a, b):
    return float((a - b).pow(2).sum() / b.pow(2).sum())


def test_layer_lags_follow_the_time_pooling():
    assert layer_lags("conv1", 8) == (1, 2, 4, 8)
    assert layer_lags("conv2", 8) == (1, 2, 4)
    assert layer_lags("conv4", 8) == (1, 2)
    assert layer_lags("conv4", 1) == (1,)


def test_lag_sees_order_that_the_plain_gram_does_not():
    # two channels: a then b (channel 0 precedes channel 1) vs b then a; same plain Gram
    t = 40
    x = torch.zeros(1, 2, 1, t)
    y = torch.zeros(1, 2, 1, t)
    for k in range(0, t, 4):
        x[0, 0, 0, k], x[0, 1, 0, k + 1] = 1.0, 1.0
        y[0, 1, 0, k], y[0, 0, 0, k + 1] = 1.0, 1.0
    n = torch.tensor([t])
    assert _rel(gram(x, n), gram(y, n)) < 1e-12
    assert _rel(lagged_gram(x, n, 1), lagged_gram(y, n, 1)) > 0.5
    assert float(lagged_gram(x, n, 1)[0, 0, 1]) > 0 and float(lagged_gram(x, n, 1)[0, 1, 0]) == 0


def test_padding_is_neutral():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1, 3, 5, 30, generator=g)
    padded = torch.zeros(2, 3, 5, 50)
    padded[0, ..., :30] = a[0]
    padded[1] = torch.rand(3, 5, 50, generator=g)
    for lag in (1, 4):
        alone = lagged_gram(a, torch.tensor([30]), lag)[0]
        inside = lagged_gram(padded, torch.tensor([30, 50]), lag)[0]
        assert torch.allclose(alone, inside, atol=1e-6)


def _tone(seconds=1.0, decay=0.0, f0=330.0):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    return (0.2 * x * np.exp(-decay * (t % 0.25))).astype(np.float32)


def test_term_runs_and_decreases():
    sets = {"iterations": "40", "width": "4", "griffin_lim_iterations": "2",
            "lagged_gram_weight": "50"}
    (on,) = run_method([_tone(f0=220.0)], [_tone(decay=12.0)], load_job(overrides=sets),
                       seeds=[0])
    assert on.losses["lagged_gram"][-1] < on.losses["lagged_gram"][0]


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="max_lag"):
        load_job(overrides={"lagged_gram_weight": "1",
                            "loss.term_params.lagged_gram.max_lag": "6"})
    with pytest.raises(ConfigError, match="deepest"):
        load_job(overrides={"lagged_gram_weight": "1",
                            "loss.term_params.lagged_gram.deepest": "0"})
