"""``content-copy`` / ``style-copy``: the output is the content / the style input (baselines)."""

from __future__ import annotations

import time

from hpc_nst.engine.methods.base import Method, passthrough_result, register_method


def _copy(which: int):  # noqa: ANN202
    def run(contents, styles, cfg, *, seeds, device=None, progress=None):  # noqa: ANN001, ANN202
        out = []
        for c, s, seed in zip(contents, styles, seeds):
            started = time.perf_counter()
            out.append(passthrough_result((c, s)[which], cfg, seed, c, s, started))
        return out
    return run


register_method(Method("content-copy", "baseline: the content audio unchanged", _copy(0)))
register_method(Method("style-copy", "baseline: the style audio unchanged", _copy(1)))
