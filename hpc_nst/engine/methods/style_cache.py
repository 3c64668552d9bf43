"""The last few styles' analyses, by content hash, shared by the per-pair methods: a
cross-synthesis batch plays many contents with one style, and analysing a style (cutting it
into notes, measuring its harmonic template) costs more than playing one content. Cached
analyses are read-only: playing with them never changes them."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")

#: (analysis name, audio hash) -> analysis, least recently used first
_CACHE: OrderedDict[tuple[str, bytes], object] = OrderedDict()
KEPT = 16  # (8 styles for each of the two analyses)
_LOCK = threading.Lock()


def cached_analysis(name: str, analyse: Callable[[np.ndarray], T], style: np.ndarray) -> T:
    """``analyse(style)`` (float32), reused for a style ``name`` analysed in the last few
    pairs; thread-safe (tasks running at once on a worker share the cache)."""
    a = np.ascontiguousarray(style, dtype=np.float32)
    key = (name, hashlib.blake2b(a.tobytes(), digest_size=16).digest()
           + len(a).to_bytes(8, "little"))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit  # type: ignore[return-value]
    result = analyse(a)  # outside the lock: two tasks may build one twice
    with _LOCK:
        _CACHE[key] = result
        while len(_CACHE) > KEPT:
            _CACHE.popitem(last=False)
    return result
