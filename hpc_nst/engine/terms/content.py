"""Content term: normalised squared distance of activations at ``loss.content_layers``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hpc_nst.config import LossConfig
from hpc_nst.engine.terms.base import Current, TargetInputs, Term, register_term
from hpc_nst.losses import style_transfer as L
from hpc_nst.models.alexnet import frames_at


@register_term
class ContentTerm(Term):
    name = "content"
    always_recorded = True
    weight_field = "content_weight"

    def layers(self, loss: LossConfig) -> tuple[set[str], set[str], set[str]]:
        return set(loss.content_layers), set(loss.content_layers), set()

    def targets(self, inputs: TargetInputs) -> dict[str, torch.Tensor]:
        out = {}
        for n in inputs.loss.content_layers:  # the target's energy once, not every iteration
            out[n] = inputs.content_features[n]
            out[f"{n}.energy"] = L.energy(out[n])
        return out

    def value(self, current: Current, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        layers = current.loss.content_layers
        return sum(
            L.content_loss(current.features[n], targets[n], frames_at(n, current.lengths),
                           targets[f"{n}.energy"])
            for n in layers
        ) / len(layers)
