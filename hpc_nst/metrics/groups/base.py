"""The contract of a metric group: what it is given (:class:`MetricInputs`) and declares."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from hpc_nst.errors import RegistryError
from hpc_nst.registry import METRIC_GROUPS

#: The report's own metric groups (:mod:`hpc_nst.report.evaluate`) and ``all``: not names
#: for a registered group.
BUILTIN_GROUPS = ("run", "spectral", "style", "judge", "target", "pitch", "all")
_COLUMN_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class MetricInputs:
    """One done pair, as a metric group sees it. ``content()``, ``style()`` and ``target()``
    load the input at the store's rate (cached across pairs: inputs repeat), None where the
    pair has none; a missing file raises ``FileNotFoundError``, which the report turns into
    a note on the pair (its columns left empty), as for its own groups."""

    pair_id: str
    sample_rate: int
    output: np.ndarray
    labels: Mapping[str, str] = field(default_factory=dict)  # content_label, style_label
    load: Callable[[str], np.ndarray | None] = lambda role: None  # role -> audio

    def content(self) -> np.ndarray | None:
        return self.load("content")

    def style(self) -> np.ndarray | None:
        return self.load("style")

    def target(self) -> np.ndarray | None:
        return self.load("target")


@dataclass(frozen=True)
class MetricGroup:
    """``compute(inputs) -> {column: number}`` for the ``columns`` it declares (a column it
    cannot compute for a pair: leave it out or NaN; an exception is a note on the pair)."""

    name: str
    summary: str
    columns: tuple[str, ...]
    compute: Callable[[MetricInputs], Mapping[str, float]]

    def __post_init__(self) -> None:
        where = f"metric group {self.name!r}"
        if self.name in BUILTIN_GROUPS:
            raise RegistryError(f"{where}: the name of one of the report's own groups "
                                f"({', '.join(BUILTIN_GROUPS)}); give it another name")
        if not self.columns:
            raise RegistryError(f"{where}: declares no column")
        bad = [c for c in self.columns if not _COLUMN_RE.match(c)]
        if bad:
            raise RegistryError(f"{where}: column name(s) {bad}: use lower-case letters, "
                                "digits and '_', starting with a letter")
        if len(set(self.columns)) != len(self.columns):
            raise RegistryError(f"{where}: a column is declared twice: {list(self.columns)}")


def register_metric_group(group: MetricGroup, *, replace: bool = False) -> MetricGroup:
    """Register ``group`` (a second group declaring one of its columns is refused when the
    report builds its columns: :func:`hpc_nst.report.evaluate.metric_columns`)."""
    return METRIC_GROUPS.register(group.name, group, replace=replace)


def metric_groups() -> tuple[MetricGroup, ...]:
    """Every registered group, by name."""
    return tuple(METRIC_GROUPS.get(name) for name in METRIC_GROUPS.names())
