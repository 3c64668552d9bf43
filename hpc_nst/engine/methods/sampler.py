"""``sampler``: the content's notes played with the style's own recorded notes (pitch-shifted,
fitted to each content note's length, at its level); no optimisation. Monophonic material.
See :mod:`hpc_nst.engine.sampler`."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from hpc_nst.config import JobConfig
from hpc_nst.engine.methods.base import per_pair_method
from hpc_nst.engine.sampler import SR, StyleBank, play
from hpc_nst.engine.transfer import at_peak_of

#: The last few styles' banks, by content hash: a cross-synthesis batch plays many contents
#: with one style, and cutting a style into notes costs more than playing one content.
_BANKS: OrderedDict[bytes, StyleBank] = OrderedDict()
_BANKS_KEPT = 8
_BANKS_LOCK = threading.Lock()


def style_bank(style: np.ndarray) -> StyleBank:
    """``StyleBank.from_audio(style)``, reused for a style seen in the last few pairs (the bank
    is read-only: playing never changes it)."""
    a = np.ascontiguousarray(style, dtype=np.float32)
    key = hashlib.blake2b(a.tobytes(), digest_size=16).digest() + len(a).to_bytes(8, "little")
    with _BANKS_LOCK:  # tasks running at once on a worker share the cache
        bank = _BANKS.get(key)
        if bank is not None:
            _BANKS.move_to_end(key)
            return bank
    bank = StyleBank.from_audio(a)  # outside the lock: two tasks may build one twice
    with _BANKS_LOCK:
        _BANKS[key] = bank
        while len(_BANKS) > _BANKS_KEPT:
            _BANKS.popitem(last=False)
    return bank


def sampler_transfer(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    if cfg.stft.sample_rate != SR:
        raise ValueError(f"method sampler works at {SR} Hz (stft.sample_rate)")
    return at_peak_of(play(content, style_bank(style)), content)


per_pair_method("sampler", "the content's notes played with the style's own notes "
                "(pitch-shifted, fitted to length, at the content's levels)", sampler_transfer)
