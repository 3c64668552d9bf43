"""``harmonic``: the content's notes resynthesised with the style's harmonics (attack, decay,
spectral evolution), by analysis and additive synthesis; no optimisation. Monophonic material.
See :mod:`hpc_nst.engine.harmonic`."""

from __future__ import annotations

import numpy as np

from hpc_nst.config import JobConfig
from hpc_nst.engine.harmonic import SR, NoteTemplate, resynthesise
from hpc_nst.engine.methods.base import per_pair_method
from hpc_nst.engine.methods.style_cache import cached_analysis
from hpc_nst.engine.transfer import at_peak_of


def style_template(style: np.ndarray) -> NoteTemplate:
    """``NoteTemplate.from_audio(style)``, reused for a style seen in the last few pairs."""
    return cached_analysis("harmonic template", NoteTemplate.from_audio, style)


def harmonic_transfer(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    out = resynthesise(content, style_template(style), cfg.optim.seed)
    return at_peak_of(out, content)


per_pair_method("harmonic", "the content's notes played with the style's harmonic note "
                "template (analysis + additive synthesis)", harmonic_transfer,
                sample_rate=SR)
