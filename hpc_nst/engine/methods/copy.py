"""``content-copy`` / ``style-copy``: the output is the content / the style input (baselines)."""

from __future__ import annotations

from hpc_nst.engine.methods.base import per_pair_method

per_pair_method("content-copy", "baseline: the content audio unchanged", lambda c, s, cfg: c)
per_pair_method("style-copy", "baseline: the style audio unchanged", lambda c, s, cfg: s)
