"""Style term: relative distance of normalised Gram matrices at ``loss.style_layers``."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hpc_nst.config import LossConfig
from hpc_nst.engine.terms.base import Current, TargetInputs, Term, register_term
from hpc_nst.losses import style_transfer as L
from hpc_nst.models.alexnet import frames_at


@register_term
class StyleTerm(Term):
    name = "style"
    always_recorded = True
    weight_field = "style_weight"

    def layers(self, loss: LossConfig) -> tuple[set[str], set[str], set[str]]:
        return set(loss.style_layers), set(), set(loss.style_layers)

    def targets(self, inputs: TargetInputs) -> dict[str, torch.Tensor]:
        return {n: L.gram(inputs.style_features[n], frames_at(n, inputs.style_lengths))
                for n in inputs.loss.style_layers}

    def value(self, current: Current, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = current.loss
        weight_sum = sum(loss.style_layer_weights) or 1.0
        return sum(
            w * L.style_loss(L.gram(current.features[n], frames_at(n, current.lengths)),
                             targets[n])
            for n, w in zip(loss.style_layers, loss.style_layer_weights)
        ) / weight_sum
