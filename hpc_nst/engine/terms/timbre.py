"""Frequency (timbral) envelope term: the style's time-averaged spectrum, per bin or as a
cepstrally smoothed dB envelope (``loss.timbre_envelope``)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hpc_nst.engine.terms.base import Current, TargetInputs, Term, register_term
from hpc_nst.losses import style_transfer as L


@register_term
class TimbreTerm(Term):
    name = "timbre"
    always_recorded = True
    weight_field = "timbre_weight"

    def targets(self, inputs: TargetInputs) -> dict[str, torch.Tensor]:
        loss = inputs.loss
        return {"timbre": L.timbre_target(inputs.style, inputs.style_lengths,
                                          loss.timbre_envelope, loss.timbre_coefficients)}

    def value(self, current: Current, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = current.loss
        return L.timbre_loss(current.x, targets["timbre"], current.lengths,
                             loss.timbre_envelope, loss.timbre_coefficients)
