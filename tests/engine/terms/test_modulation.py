"""The modulation term: zero at its target, hears tremolo and attacks, deaf to a static gain."""

from __future__ import annotations

import numpy as np
import torch

from hpc_nst.audio.spectrogram import log_magnitude
from hpc_nst.config import STFTConfig, load_job
from hpc_nst.engine.methods import run_method
from hpc_nst.engine.terms.modulation import modulation_stats

SR = 16000


def _tone(seconds=1.5, tremolo=0.0, decay=0.0, gain=1.0, f0=330.0):
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    x = x * (1 + tremolo * np.sin(2 * np.pi * 6 * t)) * np.exp(-decay * (t % 0.5))
    return (0.2 * gain * x).astype(np.float32)


def _stats(*audio):
    specs = [log_magnitude(torch.as_tensor(a), STFTConfig()) for a in audio]
    frames = max(s.shape[-1] for s in specs)
    x = torch.zeros(len(specs), specs[0].shape[0], frames)
    for i, s in enumerate(specs):
        x[i, :, : s.shape[-1]] = s
    lengths = torch.tensor([s.shape[-1] for s in specs])
    return modulation_stats(x, lengths, 16, 80.0)


def _dist(a, b):
    return float((a - b).pow(2).mean())


def test_zero_at_its_target_and_gain_invariant():
    a = _stats(_tone(tremolo=0.5), _tone(tremolo=0.5, gain=0.1))
    assert _dist(a[0], a[0]) == 0.0
    steady = _stats(_tone())[0]
    assert _dist(a[0], a[1]) < 0.01 * _dist(a[0], steady)


def test_hears_tremolo_and_attacks_and_padding_is_neutral():
    steady, trem, plucked = _stats(_tone(), _tone(tremolo=0.5), _tone(decay=8.0))
    assert _dist(steady, trem) > 0.1 and _dist(steady, plucked) > 0.1
    # 6 Hz tremolo shows in the 4-8 Hz octave of the bands the tone sounds in (< 1.7 kHz),
    # and more there than in the slowest octave
    assert float((trem - steady)[1:8, 3].min()) > 0.5
    assert float((trem - steady)[1:8, 3].mean()) > float((trem - steady)[1:8, 0].mean())
    # the same item padded inside a longer batch gives (nearly) the same statistics
    alone = _stats(_tone(tremolo=0.5, seconds=1.0))[0]
    padded = _stats(_tone(tremolo=0.5, seconds=1.0), _tone(seconds=2.0))[0]
    assert _dist(alone, padded) < 0.05 * _dist(alone, steady)


def test_term_pulls_the_output_towards_the_style_dynamics():
    content, style = _tone(seconds=1.0, f0=220.0), _tone(seconds=1.0, decay=8.0)
    sets = {"iterations": "60", "width": "4", "griffin_lim_iterations": "2"}
    (off,) = run_method([content], [style], load_job(overrides=sets), seeds=[0])
    (on,) = run_method([content], [style],
                       load_job(overrides=sets | {"modulation_weight": "20"}), seeds=[0])
    target = _stats(style)[0]
    far = _dist(_stats_of(off.output), target)
    near = _dist(_stats_of(on.output), target)
    assert near < 0.7 * far, (near, far)
    assert on.losses["modulation"][-1] < on.losses["modulation"][0]


def _stats_of(spec: np.ndarray) -> torch.Tensor:
    x = torch.as_tensor(spec)[None]
    return modulation_stats(x, torch.tensor([x.shape[-1]]), 16, 80.0)[0]


def test_bfloat16_input_gives_float32_statistics_close_to_float32():
    # under optim.precision = "bf16" the term sees bfloat16 (a GPU's autocast keeps the FFT
    # out of its float32 list): the FFT must still run, in float32
    specs = log_magnitude(torch.as_tensor(_tone(tremolo=0.5)), STFTConfig())[None]
    lengths = torch.tensor([specs.shape[-1]])
    full = modulation_stats(specs, lengths, 16, 80.0)
    half = modulation_stats(specs.to(torch.bfloat16), lengths, 16, 80.0)
    assert half.dtype == torch.float32
    assert torch.allclose(half, full, atol=0.05 * float(full.abs().max()))
