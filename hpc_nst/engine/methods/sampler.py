"""``sampler``: the content's notes played with the style's own recorded notes (pitch-shifted,
fitted to each content note's length, at its level); no optimisation. Monophonic material.
See :mod:`hpc_nst.engine.sampler`."""

from __future__ import annotations

import numpy as np

from hpc_nst.config import JobConfig
from hpc_nst.engine.methods.base import per_pair_method
from hpc_nst.engine.methods.style_cache import cached_analysis
from hpc_nst.engine.sampler import SR, StyleBank, play
from hpc_nst.engine.transfer import at_peak_of


def style_bank(style: np.ndarray) -> StyleBank:
    """``StyleBank.from_audio(style)``, reused for a style seen in the last few pairs."""
    return cached_analysis("sampler bank", StyleBank.from_audio, style)


def sampler_transfer(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    return at_peak_of(play(content, style_bank(style)), content)


per_pair_method("sampler", "the content's notes played with the style's own notes "
                "(pitch-shifted, fitted to length, at the content's levels)", sampler_transfer,
                sample_rate=SR)
