"""What a loss term is: the :class:`Term` base class and what it is given.

A term is one weighted part of the objective ``L = sum_k w_k * term_k(X)``. It declares the
network layers it needs, computes its targets once per batch from the content and the style
(:meth:`Term.targets`), and gives one value per pair for the current spectrogram
(:meth:`Term.value`). Targets are batch-first tensors, so an objective of a few pairs is a
slice of the batch's. Register a subclass with :func:`register_term`; see ``docs/terms.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import torch

from hpc_nst.config import LossConfig
from hpc_nst.errors import RegistryError
from hpc_nst.models.alexnet import AudioAlexNet
from hpc_nst.registry import TERMS

#: Names no term may have: the recorded curves' (``total``).
RESERVED_NAMES = ("total",)


@dataclass(frozen=True)
class TargetInputs:
    """What :meth:`Term.targets` sees: padded log-magnitudes ``(B, F, T)`` with lengths, and the
    network's activations of both at the layers the terms asked for."""

    model: AudioAlexNet
    loss: LossConfig
    content: torch.Tensor
    content_lengths: torch.Tensor
    style: torch.Tensor
    style_lengths: torch.Tensor
    content_features: Mapping[str, torch.Tensor]
    style_features: Mapping[str, torch.Tensor]
    #: ``(start, stop, whole)``: the content is frames ``start:stop`` of a ``whole``-frame input
    #: optimised window by window (batch of one); a term aligned in time to the style (the
    #: envelope) takes its target over the whole input and keeps this window's part. None:
    #: the content is the whole input.
    span: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class Current:
    """What :meth:`Term.value` sees: the spectrogram being optimised and its activations."""

    x: torch.Tensor  # (B, F, T), zero beyond each item's length
    lengths: torch.Tensor  # content frames per item
    features: Mapping[str, torch.Tensor]
    loss: LossConfig


class Term:
    """One loss term. Subclasses set :attr:`name` and override what they need."""

    #: The term's name: the store's ``term`` coordinate and the report's ``loss_<name>`` column.
    name: ClassVar[str] = ""
    #: Parameters and their defaults, set per job as ``loss.term_params.<name>.<param>``.
    params: ClassVar[Mapping[str, float]] = {}
    #: Computed and recorded even at weight 0 (the paper's four terms, as stores always had).
    always_recorded: ClassVar[bool] = False
    #: A field of the job's ``loss`` section holding the weight (the paper's four terms);
    #: ``None``: the weight is ``loss.term_weights.<name>``.
    weight_field: ClassVar[str | None] = None

    def weight(self, loss: LossConfig) -> float:
        """The term's weight in a job: ``loss.term_weights.<name>`` (0, i.e. off, if unset)."""
        if self.weight_field:
            return float(getattr(loss, self.weight_field))
        return float(loss.term_weights.get(self.name, 0.0))

    def weight_key(self) -> str:
        """The config key of the weight, for messages and ``--set``."""
        return f"loss.{self.weight_field}" if self.weight_field else \
            f"loss.term_weights.{self.name}"

    def param(self, loss: LossConfig, key: str) -> float:
        """A parameter's value in a job (its default unless ``loss.term_params`` sets it)."""
        return float(loss.term_params.get(self.name, {}).get(key, self.params[key]))

    def layers(self, loss: LossConfig) -> tuple[set[str], set[str], set[str]]:
        """Layers needed of ``(X, content, style)``; none by default."""
        return set(), set(), set()

    def validate(self, loss: LossConfig) -> None:
        """Raise :class:`~hpc_nst.errors.ConfigError` for a bad parameter (named)."""

    def targets(self, inputs: TargetInputs) -> dict[str, torch.Tensor]:
        """Batch-first target tensors, computed once per batch without gradients."""
        return {}

    def value(self, current: Current, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The term for each item ``(B,)``, differentiable in ``current.x``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<term {self.name} ({type(self).__module__})>"


def register_term(cls: type[Term], *, replace: bool = False) -> type[Term]:
    """Class decorator: register an instance of ``cls`` under ``cls.name``."""
    if not cls.name:
        raise TypeError(f"{cls.__qualname__}: a Term needs a name")
    if cls.name in RESERVED_NAMES:  # its curve would overwrite the weighted sum's
        raise RegistryError(f"loss term {cls.name!r} ({cls.__module__}.{cls.__qualname__}): "
                            f"{', '.join(map(repr, RESERVED_NAMES))} is the name of the "
                            "objective's weighted sum; give the term another name")
    TERMS.register(cls.name, cls(), replace=replace)
    return cls


PAPER_TERMS = ("content", "style", "envelope", "timbre")


def active_terms(loss: LossConfig) -> list[Term]:
    """The terms an objective evaluates, in a fixed order (the paper's four first, then the
    others by name): those with a non-zero weight and those always recorded."""
    names = [n for n in PAPER_TERMS if n in TERMS] + [
        n for n in TERMS.names() if n not in PAPER_TERMS]
    terms = [TERMS.get(n) for n in names]
    return [t for t in terms if t.always_recorded or t.weight(loss) != 0.0]


def recorded_terms(loss: LossConfig) -> tuple[str, ...]:
    """Names of the curves an ``nst`` pair records: ``total`` and each active term."""
    return ("total", *(t.name for t in active_terms(loss)))
