"""The objective of a batch of pairs: the job's active loss terms, their targets computed once.

``L = sum_k w_k * term_k(X)`` over :func:`hpc_nst.engine.terms.active_terms`; which terms exist
is the term registry's business (:mod:`hpc_nst.engine.terms`), not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hpc_nst.config import LossConfig
from hpc_nst.engine.terms import Current, TargetInputs, Term, active_terms
from hpc_nst.errors import TransferError
from hpc_nst.models.alexnet import AudioAlexNet


@dataclass
class Objective:
    """Targets of B pairs; ``__call__`` gives the weighted total and each term, per item."""

    model: AudioAlexNet
    loss: LossConfig
    lengths: torch.Tensor  # content frames per item
    terms: list[Term]
    targets: dict[str, dict[str, torch.Tensor]]  # term name -> batch-first target tensors
    #: Layers of X the terms need and each weighted term, fixed once per objective.
    x_layers: set[str] = field(init=False)
    weighted: list[tuple[str, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.x_layers = set().union(*(t.layers(self.loss)[0] for t in self.terms))
        self.weighted = [(t.name, t.weight(self.loss)) for t in self.terms if t.weight(self.loss)]

    @property
    def names(self) -> tuple[str, ...]:
        """The recorded terms, in order."""
        return tuple(t.name for t in self.terms)

    @classmethod
    def build(
        cls,
        model: AudioAlexNet,
        loss: LossConfig,
        content: torch.Tensor,
        content_lengths: torch.Tensor,
        style: torch.Tensor,
        style_lengths: torch.Tensor,
        span: tuple[int, int, int] | None = None,
    ) -> Objective:
        """Targets from padded log-magnitudes ``content`` ``(B, F, Tc)`` and ``style``;
        ``span``: the content is that window of a longer input (``TargetInputs.span``)."""
        terms = active_terms(loss)
        c_layers: set[str] = set()
        s_layers: set[str] = set()
        for t in terms:
            _, c, s = t.layers(loss)
            c_layers |= c
            s_layers |= s
        with torch.no_grad():
            cfeat = model.features(content[:, None], c_layers, content_lengths) if c_layers else {}
            sfeat = model.features(style[:, None], s_layers, style_lengths) if s_layers else {}
            inputs = TargetInputs(model, loss, content, content_lengths, style, style_lengths,
                                  cfeat, sfeat, span)
            targets = {t.name: t.targets(inputs) for t in terms}
        return cls(model, loss, content_lengths, terms, targets)

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total ``(B,)`` and the unweighted terms ``{name: (B,)}`` for ``x``."""
        layers = self.x_layers
        feats = self.model.features(x[:, None], layers, self.lengths) if layers else {}
        current = Current(x, self.lengths, feats, self.loss)
        values = {t.name: t.value(current, self.targets[t.name]) for t in self.terms}
        for name, v in values.items():  # a (B, 1) would broadcast the total to (B, B)
            if tuple(v.shape) != (x.shape[0],):
                raise TransferError(f"loss term {name!r} returned a value of shape "
                                    f"{tuple(v.shape)} for a batch of {x.shape[0]}: its "
                                    f"value() must give one number per item, shape "
                                    f"({x.shape[0]},) (reduce over the other axes)")
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for name, w in self.weighted:
            total = total + w * values[name]
        return total, values
