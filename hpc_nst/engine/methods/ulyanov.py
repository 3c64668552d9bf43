"""``ulyanov``: Ulyanov & Lebedev (2016), random 1-D convolution over STFT bins, L-BFGS
(:mod:`hpc_nst.engine.ulyanov`)."""

from __future__ import annotations

from hpc_nst.engine.device import pick_device
from hpc_nst.engine.methods.base import Method, register_method
from hpc_nst.engine.ulyanov import RECORDED, ulyanov_batch


def _run(contents, styles, cfg, *, seeds, device=None, progress=None):  # noqa: ANN001, ANN202
    return ulyanov_batch(contents, styles, cfg, seeds=seeds, device=pick_device(device),
                         progress=progress)


register_method(Method("ulyanov", "baseline: Ulyanov & Lebedev (2016), 1-D random conv + L-BFGS",
                       _run, loss_terms=lambda cfg: RECORDED))
