"""A method for load and fault benchmarks: ``content-copy`` that fails and kills at random.

Loaded through ``HPC_NST_PLUGINS=chaos_plugin`` (with ``benchmarks/`` on ``PYTHONPATH``; dask
workers inherit both). Each call fails with probability ``HPC_NST_CHAOS_FAIL`` (an exception:
the batch's pairs are retried alone, then recorded failed) and kills its worker process with
probability ``HPC_NST_CHAOS_KILL`` (``os._exit``: dask reruns the task elsewhere). Never used
by the package or its presets.
"""

from __future__ import annotations

import os
import random

from hpc_nst.engine.methods.base import Method, passthrough_result, register_method


def _run(contents, styles, cfg, *, seeds, device=None, progress=None):  # noqa: ANN001, ANN202
    import time

    if random.random() < float(os.environ.get("HPC_NST_CHAOS_KILL", "0")):
        os._exit(1)
    if random.random() < float(os.environ.get("HPC_NST_CHAOS_FAIL", "0")):
        raise RuntimeError("chaos: injected failure")
    started = time.perf_counter()
    return [passthrough_result(c, cfg, seed, c, s, started)
            for c, s, seed in zip(contents, styles, seeds)]


register_method(Method("chaos-copy", "content-copy failing and killing workers at random",
                       _run))
