"""The post-filter of ``layered-post``: its statistics, its EQ-invariance, the shipped weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpc_nst.models import post_filter as pf

SR = pf.SR


def _note_train(tremolo_hz: float = 0.0, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    y = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 6))
    env = np.exp(-4.0 * (t % 0.5))  # a decaying note every 0.5 s
    if tremolo_hz:
        env = env * (1.0 + 0.8 * np.sin(2 * np.pi * tremolo_hz * t))
    return (0.3 * y * env).astype(np.float32)


def test_dynamics_statistics_are_zero_for_identical_inputs_and_see_a_tremolo():
    plain = torch.from_numpy(pf.log_mel(_note_train()))
    trem = torch.from_numpy(pf.log_mel(_note_train(tremolo_hz=12.0)))
    same = (pf.dynamics_statistics(plain) - pf.dynamics_statistics(plain)).abs().max()
    assert float(same) == 0.0
    diff = pf.dynamics_statistics(trem) - pf.dynamics_statistics(plain)
    assert float(diff[1].mean()) > 0.5  # the lag-1 change grows with a fast tremolo


def test_texture_statistics_are_zero_for_identical_inputs_gain_free_and_see_a_tremolo():
    plain = torch.from_numpy(pf.log_mel(_note_train()))
    trem = torch.from_numpy(pf.log_mel(_note_train(tremolo_hz=12.0)))
    base = pf.texture_statistics(plain)
    assert base.shape == (10, pf.N_MELS)
    assert float((pf.texture_statistics(plain) - base).abs().max()) == 0.0
    torch.testing.assert_close(pf.texture_statistics(plain - 20.0), base)  # a gain: nothing
    diff = pf.texture_statistics(trem) - base
    active = base[0] > 1.0  # the bands the notes reach
    assert float(diff[1, active].mean()) > 0.3  # larger rises and falls between frames
    assert float(diff[2, active].mean()) > 0.3
    t = np.arange(2 * SR) / SR
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    steady, trembling = (torch.from_numpy(pf.log_mel((tone * env).astype(np.float32)))
                         for env in (1.0, 1.0 + 0.8 * np.sin(2 * np.pi * 12.0 * t)))
    rates = pf.texture_statistics(trembling) - pf.texture_statistics(steady)
    band = int(pf.log_mel(tone.astype(np.float32)).mean(axis=1).argmax())
    assert float(rates[7, band]) > 20.0  # the 8-16 Hz modulation power of the tone's band
    assert float(rates[7, band]) > float(rates[4, band]) + 10.0  # more than at 0.5-2 Hz


def test_style_statistics_ignore_a_static_gain_and_see_dynamics():
    y = _note_train()
    a, b = pf.style_statistics(y), pf.style_statistics(0.1 * y)
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert np.abs(pf.style_statistics(_note_train(tremolo_hz=12.0)) - a).mean() > 0.3


def test_an_untrained_filter_leaves_the_audio_as_it_is():
    model = pf.PostFilterNet().eval()  # zero output layer: 0 dB everywhere
    y = _note_train()
    out = pf.post_filter(y, _note_train(tremolo_hz=6.0), model)
    assert out.shape == y.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, y, atol=1e-4)
    # too short for one frame, or silent: returned unchanged
    assert np.array_equal(pf.post_filter(y[:100], y, model), y[:100])


def test_the_shipped_gains_do_not_move_with_a_static_filter_of_the_input():
    """The model sees each band with its time mean removed: an EQ of the rendering (a static
    gain per band) gives the same gains."""
    model = pf.load_post_filter()
    y, style = _note_train(), _note_train(tremolo_hz=6.0)
    mel = torch.from_numpy(pf.log_mel(y))[None]
    tilt = torch.linspace(-12.0, 6.0, pf.N_MELS)[None, :, None]  # a static tilt, dB per band
    stats = torch.from_numpy(pf.style_statistics(style))[None]
    with torch.no_grad():
        g0, g1 = model(mel, stats), model(mel + tilt, stats)
    torch.testing.assert_close(g0, g1, atol=1e-4, rtol=0)
    assert float(g0.abs().max()) <= pf.MAX_GAIN_DB
    assert float(g0.abs().mean()) > 0.05  # trained: it does filter
    # and the style conditions it: another style, other gains
    with torch.no_grad():
        g2 = model(mel, torch.from_numpy(pf.style_statistics(_note_train(12.0)))[None])
    assert float((g2 - g0).abs().mean()) > 0.01


def test_a_broken_checkpoint_is_named(tmp_path):
    from hpc_nst.errors import CheckpointError

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a post-filter checkpoint"):
        pf.load_post_filter(str(bad))


def test_a_checkpoint_of_the_first_version_is_named_as_such(tmp_path):
    from hpc_nst.errors import CheckpointError

    state = pf.PostFilterNet().state_dict()
    state["condition.0.weight"] = torch.zeros(128, 2 * pf.N_MELS)  # v1: spread and change only
    old = tmp_path / "v1.pt"
    torch.save({"state_dict": state, "record": {}}, old)
    with pytest.raises(CheckpointError, match=r"another version .*128 style features.*retrain"):
        pf.load_post_filter(str(old))


def test_a_style_too_short_for_its_statistics_leaves_the_audio_unchanged(caplog):
    model = pf.load_post_filter()
    y = _note_train()
    short = _note_train(tremolo_hz=6.0)[: int(0.5 * SR)]
    with caplog.at_level("WARNING", logger="hpc_nst.models.post_filter"):
        assert np.array_equal(pf.post_filter(y, short, model), y)
    assert "style is 0.50 s" in caplog.text
    assert not np.array_equal(pf.post_filter(y, _note_train(tremolo_hz=6.0), model), y)
