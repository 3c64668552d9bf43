"""What the resynthesis methods (``harmonic``, ``sampler``, ``layered``) promise: the style's
note shape and harmonic structure on the content's notes."""

from __future__ import annotations

import numpy as np
import pytest

from hpc_nst.config import load_job
from hpc_nst.engine.methods import run_method
from tests.engine.tones import SR, harmonic_db, level_db, notes


@pytest.fixture(scope="module", params=["harmonic", "sampler", "layered"])
def cfg(request):
    return load_job(overrides={"method": request.param})


def transfer(content: np.ndarray, style: np.ndarray, cfg) -> np.ndarray:
    return run_method([content], [style], cfg, seeds=[0])[0].audio


def test_a_plucked_style_decays_on_sustained_content_and_a_held_one_does_not(cfg):
    content = notes([262.0, 392.0], seconds=0.9)  # organ-like: sustained
    plucked = transfer(content, notes([220.0, 330.0, 440.0], 0.4, decay_s=0.1), cfg)
    held = transfer(content, notes([220.0, 330.0, 440.0], 0.4), cfg)
    # 0.05-0.15 s vs 0.6-0.8 s into the first note: the style's notes last 0.4 s, the
    # content's 0.9 s; the plucked decay goes on, the held note stays level
    assert level_db(plucked, 0.05, 0.15) - level_db(plucked, 0.6, 0.8) > 15
    assert abs(level_db(held, 0.05, 0.15) - level_db(held, 0.6, 0.8)) < 6


def test_the_style_harmonic_structure_reaches_the_content(cfg):
    content = notes([300.0], 1.0)  # 1/h: every harmonic present
    odd = [1.0 / h if h % 2 else 0.0 for h in range(1, 9)]  # clarinet-like
    out = transfer(content, notes([280.0, 320.0], 0.8, harmonics=odd), cfg)
    seg = out[int(0.2 * SR):int(0.8 * SR)]
    assert harmonic_db(seg, 300.0, 3) - harmonic_db(seg, 300.0, 2) > 15
    assert harmonic_db(seg, 300.0, 5) - harmonic_db(seg, 300.0, 4) > 15
