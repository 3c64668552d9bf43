"""Every metric of one (store, pair): the rows of the report's tables.

Metric groups (``--metrics``): ``run`` (final loss terms, spectral convergence, runtime),
``spectral`` (centroid and bandwidth of content, style and output, output/content ratios),
``style`` (classifier-judged style), ``judge`` (the EQ-proof judge of
:mod:`hpc_nst.metrics.judge`: style from dynamics only), ``target`` (LSD, timbre and
dynamics distances to the target) and ``pitch`` (Jaccard pitch distance to the target); then
every registered :class:`~hpc_nst.metrics.groups.MetricGroup` (``level``, a plugin's own).
Features of input files are cached per path (a bounded LRU), so a content, style or target
shared by many pairs or stores is analysed once.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpc_nst.batch.reader import PairData, StoreInfo
from hpc_nst.batch.verify import recorded_audio_digest
from hpc_nst.errors import RegistryError
from hpc_nst.metrics import run as runm
from hpc_nst.metrics.groups import MetricGroup, MetricInputs, metric_groups
from hpc_nst.metrics.spectral import spectral_shape

GROUPS = ("run", "spectral", "style", "judge", "target", "pitch")
ID_COLUMNS = ("job", "method", "pair_id", "status", "error", "content", "style", "target",
              "content_label", "style_label", "seed", "device", "attempts", "audio_digest")
#: The loss columns every report has (the paper's objective); stores add their own terms.
LOSS_TERMS = ("total", "content", "style", "envelope", "timbre")
OTHER_METRICS = (
    "spectral_convergence", "runtime_s", "ms_per_iteration", "device_s", "wall_s",
    "peak_memory_mb",
    "centroid_content_hz", "centroid_style_hz", "centroid_output_hz", "centroid_ratio",
    "bandwidth_content_hz", "bandwidth_style_hz", "bandwidth_output_hz", "bandwidth_ratio",
    "style_top1", "style_prob", "judge_top1", "judge_prob",
    "lsd_db", "lsd_dynamics_db", "timbre_mfcc", "timbre_dynamics_db", "pitch_jaccard",
)
TEXT_COLUMNS = ("style_class", "style_class_source", "output_class", "judge_class", "notes")


def report_terms(*stores_terms: Sequence[str]) -> tuple[str, ...]:
    """The loss terms of a report: :data:`LOSS_TERMS`, then any other term of the stores."""
    names = dict.fromkeys(LOSS_TERMS)
    for terms in stores_terms:
        names.update(dict.fromkeys(terms))
    return tuple(names)


def all_groups() -> tuple[str, ...]:
    """The report's own metric groups, then the registered ones."""
    return (*GROUPS, *(g.name for g in metric_groups()))


def group_columns() -> tuple[str, ...]:
    """The columns of the registered metric groups; one that another group or the report
    itself has already is refused, naming both."""
    owner = {c: "the report" for c in (*ID_COLUMNS, *OTHER_METRICS, *TEXT_COLUMNS)}
    out: list[str] = []
    for group in metric_groups():
        for c in group.columns:
            if c in owner or c.startswith("loss_"):
                raise RegistryError(f"metric group {group.name!r}: column {c!r} is "
                                    f"{owner.get(c, 'a loss term')}'s already; rename it")
            owner[c] = f"metric group {group.name!r}"
            out.append(c)
    return tuple(out)


def metric_columns(terms: Sequence[str] = LOSS_TERMS) -> tuple[str, ...]:
    return (*(f"loss_{t}" for t in terms), *OTHER_METRICS, *group_columns())


def columns(terms: Sequence[str] = LOSS_TERMS) -> tuple[str, ...]:
    return (*ID_COLUMNS, *metric_columns(terms), *TEXT_COLUMNS)

INT_COLUMNS = ("seed", "attempts")
CACHE_SIZE = 512


class _LRU(OrderedDict):
    """A small least-recently-used cache."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def get_or(self, key: Any, make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        if len(self) > self.size:
            self.popitem(last=False)
        return value


class Evaluator:
    """Computes a row per pair; holds the classifier and the input-feature caches."""

    def __init__(self, groups: tuple[str, ...] | None = None, classifier: Any = None,
                 labels: dict[str, dict[str, str]] | None = None,
                 terms: Sequence[str] = LOSS_TERMS, judge: Any = None):
        self.terms = tuple(terms)
        known = all_groups()
        groups = known if groups is None else groups
        unknown = set(groups) - set(known)
        if unknown:
            raise ValueError(f"unknown metric group(s) {sorted(unknown)}; known: {known}")
        self.groups = set(groups)
        self.extra = [g for g in metric_groups() if g.name in self.groups]
        if classifier is None:
            self.groups.discard("style")
        self.classifier = classifier
        if judge is None:
            self.groups.discard("judge")
        self.judge = judge
        self.labels = labels or {}
        self._audio = _LRU(CACHE_SIZE)
        self._derived = _LRU(CACHE_SIZE)

    # -- inputs ---------------------------------------------------------------------------
    def _load(self, path: Path, sr: int) -> np.ndarray | str:
        """The file's audio, or an error message (cached either way)."""
        from hpc_nst.audio.io import AudioError, load_audio

        def make() -> np.ndarray | str:
            try:
                return load_audio(path, sr)
            except (AudioError, OSError) as exc:
                return str(exc)

        return self._audio.get_or((str(path), sr), make)

    def _derive(self, what: str, path: Path, sr: int, fn: Callable[[np.ndarray], Any]) -> Any:
        audio = self._load(path, sr)
        if isinstance(audio, str):
            raise FileNotFoundError(audio)
        return self._derived.get_or((what, str(path), sr), lambda: fn(audio))

    # -- one pair -------------------------------------------------------------------------
    def row(self, info: StoreInfo, pair: PairData) -> dict[str, Any]:
        """The table row of ``pair`` (metrics NaN where not applicable or not computable)."""
        labels = self.labels.get(pair.pair_id, {})
        row: dict[str, Any] = {
            "job": info.label, "method": info.method, "pair_id": pair.pair_id,
            "status": pair.status, "error": pair.error, "content": pair.paths[0],
            "style": pair.paths[1], "target": pair.paths[2],
            "content_label": labels.get("content_label", ""),
            "style_label": labels.get("style_label", ""), "seed": pair.seed,
            "device": pair.device, "attempts": pair.attempts,
            # the output these metrics are of (export --report tells a pair computed again)
            "audio_digest": recorded_audio_digest(pair.checksum),
        }
        row.update({c: math.nan for c in metric_columns(self.terms)})
        row.update({c: "" for c in TEXT_COLUMNS})
        if pair.status != "done":
            return row
        notes: list[str] = []
        sr = info.sample_rate
        steps: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("run", lambda: self._run(pair, info.terms)),
            ("spectral", lambda: self._spectral(pair, sr, row)),
            ("style", lambda: self._style(pair, row["style_label"], sr, info, notes)),
            ("judge", lambda: self._judge(pair, row["style_label"], sr, notes)),
            ("target", lambda: self._target(pair, sr)),
            ("pitch", lambda: self._pitch(pair, sr)),
            *((g.name, lambda g=g: self._registered(g, pair, sr, labels, notes))
              for g in self.extra),
        ]
        for group, step in steps:
            if group not in self.groups:
                continue
            try:
                row.update(step())
            except (FileNotFoundError, ValueError) as exc:  # ValueError: e.g. a clip too
                notes.append(f"{group}: {exc}")  # short for the judge's frames: that group's
            except _Skip:  # metrics stay empty for this pair, the report goes on
                pass
        row["notes"] = "; ".join(notes)
        return row

    def _run(self, pair: PairData, terms: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if pair.losses is not None and pair.records > 0:
            out.update(runm.final_losses(pair.losses, pair.records, terms or LOSS_TERMS))
        # NaN (left empty) where no Griffin-Lim ran: the reader's rule
        if math.isfinite(pair.spectral_convergence):
            out["spectral_convergence"] = pair.spectral_convergence
        out["runtime_s"] = runm.runtime(pair.timings, pair.batch_pairs)
        out["ms_per_iteration"] = pair.timings.get("ms_per_iteration", math.nan)
        for key in ("device_s", "wall_s", "peak_memory_mb"):
            value = pair.accounting.get(key)
            out[key] = float(value) if isinstance(value, (int, float)) else math.nan
        return out

    def _spectral(self, pair: PairData, sr: int, out: dict[str, Any]) -> dict[str, Any]:
        """Fills ``out`` as far as it can (the output's shape even when an input is missing)."""
        if pair.audio is not None:
            out["centroid_output_hz"], out["bandwidth_output_hz"] = spectral_shape(pair.audio, sr)
        missing = []
        for role, path in (("content", pair.content), ("style", pair.style)):
            if path is None:
                continue
            try:
                c, b = self._derive("shape", path, sr, lambda a: spectral_shape(a, sr))
            except FileNotFoundError as exc:
                missing.append(str(exc))
                continue
            out[f"centroid_{role}_hz"], out[f"bandwidth_{role}_hz"] = c, b
        for name in ("centroid", "bandwidth"):
            o, c = out.get(f"{name}_output_hz", math.nan), out.get(f"{name}_content_hz", math.nan)
            out[f"{name}_ratio"] = o / c if c and math.isfinite(c) and c > 0 else math.nan
        if missing:
            raise FileNotFoundError("; ".join(missing))
        return out

    def _style(self, pair: PairData, label: str, sr: int, info: StoreInfo,
               notes: list[str]) -> dict[str, Any]:
        from hpc_nst.metrics.style_class import judge_style, style_class

        clf = self.classifier
        if pair.audio is None or sr != clf.stft.sample_rate:
            raise _Skip
        if str(info.job.get("model", {}).get("name", "random")) != "random":
            notes.append("style_top1: the job optimised a trained network's features (it may "
                         "share the classifier's weights); judge_top1 shares none")
        idx: int | None = None
        source = "none"
        if label:
            idx, source = style_class(clf, label, None)
            if idx is None:  # (style_top1 then says whether the output sounds like the style)
                notes.append(f"style_top1: the style label {label!r} is no class of the "
                             "classifier; the class it hears in the style audio stands in")
        if idx is None and pair.style is not None:
            idx, source = self._derive("class", pair.style, sr,
                                       lambda a: style_class(clf, None, a))
        if idx is None:
            raise _Skip
        out = judge_style(clf.probabilities(pair.audio), idx, clf.classes)
        out.update(style_class=clf.classes[idx], style_class_source=source)
        return out

    def _judge(self, pair: PairData, label: str, sr: int, notes: list[str]) -> dict[str, Any]:
        from hpc_nst.metrics.judge import judge_style

        judge = self.judge
        if pair.audio is None:
            raise _Skip
        if label and judge.index(label) is None:
            notes.append(f"judge_top1: the style label {label!r} is no class of the judge; the "
                         "class it hears in the style audio stands in")
        if not label or judge.index(label) is None:
            if pair.style is None:
                raise _Skip
            try:
                probs = self._derive("judge", pair.style, sr,
                                     lambda a: judge.probabilities(a, sr))
            except ValueError as exc:  # (the message would read as the output's)
                raise ValueError(f"the style audio, whose class stands in for the label: "
                                 f"{exc}") from None
            label = judge.classes[int(np.argmax(probs))]
        return judge_style(judge, pair.audio, label, sr)

    def _target(self, pair: PairData, sr: int) -> dict[str, Any]:
        from hpc_nst.metrics import reference

        if pair.target is None or pair.audio is None:
            raise _Skip
        tf = self._derive("features", pair.target, sr, lambda a: reference.features(a, sr))
        return reference.compare(reference.features(pair.audio, sr, tf.n_samples), tf)

    def _pitch(self, pair: PairData, sr: int) -> dict[str, Any]:
        from hpc_nst.metrics import pitch
        from hpc_nst.metrics.reference import pad_or_truncate

        if pair.target is None or pair.audio is None:
            raise _Skip
        target_sets = self._derive("pitch", pair.target, sr, lambda a: pitch.pitch_sets(a, sr))
        n = self._derive("length", pair.target, sr, len)
        out = pitch.pitch_sets(pad_or_truncate(pair.audio, n), sr)
        return {"pitch_jaccard": pitch.jaccard_distance(out, target_sets)}


    def _registered(self, group: MetricGroup, pair: PairData, sr: int,
                    labels: dict[str, str], notes: list[str]) -> dict[str, Any]:
        """A registered group's columns (numbers; NaN where it gives none). A value that is
        no number, or a column it did not declare, is a note; its other columns are kept."""
        if pair.audio is None:
            raise _Skip
        paths = {"content": pair.content, "style": pair.style, "target": pair.target}

        def load(role: str) -> np.ndarray | None:  # (the inputs' audio cache, as the
            path = paths[role]  # built-in groups read it: no second copy)
            if path is None:
                return None
            audio = self._load(path, sr)
            if isinstance(audio, str):
                raise FileNotFoundError(audio)
            return audio

        try:
            got = group.compute(MetricInputs(pair.pair_id, sr, pair.audio, labels, load))
        except (FileNotFoundError, ValueError):
            raise
        except Exception as exc:  # a group's own bug: a note on the pair, the report goes on
            raise ValueError(f"metric group {group.name!r} failed: {type(exc).__name__}: "
                             f"{exc}") from exc
        extra = sorted(set(got) - set(group.columns))
        if extra:
            notes.append(f"{group.name}: returned undeclared column(s) {extra} (declared: "
                         f"{list(group.columns)}; left out); fix the group")
        out: dict[str, Any] = {}
        for c in group.columns:
            if c not in got:
                continue
            v = got[c]
            try:
                out[c] = float(v)
            except (TypeError, ValueError):
                notes.append(f"{group.name}: column {c!r} is {v!r}, not a number (left "
                             "empty); a metric's value is a number")
        return out


class _Skip(Exception):
    """The metric group does not apply to this pair (no target, no audio...)."""
