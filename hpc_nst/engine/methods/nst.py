"""``nst``: the paper's method (:func:`hpc_nst.engine.transfer.transfer_batch`)."""

from __future__ import annotations

from hpc_nst.engine.methods.base import Method, register_method
from hpc_nst.engine.terms import recorded_terms
from hpc_nst.engine.transfer import transfer_batch


def _run(contents, styles, cfg, *, seeds, device, progress):  # noqa: ANN001, ANN202
    return transfer_batch(contents, styles, cfg, seeds=seeds, device=device, progress=progress)


register_method(Method(
    "nst", "Verma & Smith (2017): optimise a spectrogram from noise against the loss terms",
    _run, loss_terms=lambda cfg: recorded_terms(cfg.loss)))
