"""Temporal envelope term: the style's mean log-magnitude per frame, resampled to the content's
length, matched frame by frame."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hpc_nst.engine.terms.base import Current, TargetInputs, Term, register_term
from hpc_nst.losses import style_transfer as L


@register_term
class EnvelopeTerm(Term):
    name = "envelope"
    always_recorded = True
    weight_field = "envelope_weight"

    def targets(self, inputs: TargetInputs) -> dict[str, torch.Tensor]:
        content, style = inputs.content, inputs.style
        senv = L.temporal_envelope(style)
        env = torch.zeros(content.shape[0], content.shape[-1], dtype=content.dtype,
                          device=content.device)
        pairs = zip(inputs.style_lengths.tolist(), inputs.content_lengths.tolist())
        for i, (s_len, c_len) in enumerate(pairs):
            if inputs.span is None:
                env[i, :c_len] = L.resample_envelope(senv[i], s_len, c_len)
            else:  # a window of a longer input: its part of the whole input's target
                start, stop, whole = inputs.span
                env[i, :c_len] = L.resample_envelope(senv[i], s_len, whole)[start:stop]
        return {"envelope": env}

    def value(self, current: Current, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return L.envelope_loss(current.x, targets["envelope"], current.lengths)
