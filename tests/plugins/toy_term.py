"""A toy loss term registered from outside the package (loaded through HPC_NST_PLUGINS)."""

from __future__ import annotations

from hpc_nst.engine.terms import Term, register_term
from hpc_nst.losses.style_transfer import temporal_envelope


@register_term
class LoudnessTerm(Term):
    """Squared distance of the mean log-magnitude to the style's, per pair."""

    name = "toy"
    params = {"offset": 0.0}

    def targets(self, inputs):  # noqa: ANN001, ANN201
        level = temporal_envelope(inputs.style).sum(-1) / inputs.style_lengths
        return {"level": level + self.param(inputs.loss, "offset")}

    def value(self, current, targets):  # noqa: ANN001, ANN201
        level = temporal_envelope(current.x).sum(-1) / current.lengths
        return (level - targets["level"]).pow(2)
