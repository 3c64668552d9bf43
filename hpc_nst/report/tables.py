"""The report's tables, written while the rows stream past (memory bounded by the groups).

- :class:`RowWriter`: one row per (store, pair) to ``pairs.csv``, ``pairs.parquet`` (row groups
  of :data:`PARQUET_BATCH` rows) and ``pairs.md`` at once;
- :class:`GroupStats`: per group count, mean and sample standard deviation of every metric
  (Welford's update, so nothing but the running sums is kept), over done pairs only, plus the
  number of pairs, done and failed;
- :func:`write_summaries`: ``summary_by_<grouping>.{csv,parquet,md}`` and ``summary.md``.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

PARQUET_BATCH = 4096
#: The metrics of the headline table (summary.md, the HTML summaries, the README).
HEADLINE = ("lsd_db", "lsd_dynamics_db", "timbre_mfcc", "timbre_dynamics_db", "pitch_jaccard",
            "style_top1", "style_prob", "judge_top1", "judge_prob", "centroid_ratio",
            "bandwidth_ratio", "spectral_convergence", "runtime_s")
#: Groupings of the summaries: name -> key columns.
GROUPINGS: dict[str, tuple[str, ...]] = {
    "job": ("job", "method"),
    "style": ("job", "method", "style_label"),
    "content": ("job", "method", "content_label"),
}


def fmt(value: Any) -> str:
    """A cell for Markdown/HTML: 4 significant digits for floats, '' for NaN."""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    return str(value)


def md_cell(value: Any) -> str:
    return fmt(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _schema(columns: Sequence[str], numeric: Sequence[str], ints: Sequence[str]) -> Any:
    import pyarrow as pa

    def kind(c: str) -> Any:
        return pa.int64() if c in ints else pa.float64() if c in numeric else pa.string()

    return pa.schema([(c, kind(c)) for c in columns])


class RowWriter:
    """Streams rows to CSV, Parquet and Markdown files named ``<stem>.{csv,parquet,md}``."""

    def __init__(self, out_dir: Path, stem: str, columns: Sequence[str],
                 numeric: Sequence[str], ints: Sequence[str] = ()):
        import pyarrow.parquet as pq

        self.columns, self.numeric, self.ints = list(columns), set(numeric), set(ints)
        self.schema = _schema(columns, numeric, ints)
        self.paths = {ext: out_dir / f"{stem}.{ext}" for ext in ("csv", "parquet", "md")}
        self._csv_fh = open(self.paths["csv"], "w", newline="", encoding="utf-8")
        self._csv = csv.writer(self._csv_fh, lineterminator="\n")
        self._csv.writerow(self.columns)
        self._md = open(self.paths["md"], "w", encoding="utf-8")
        self._md.write(markdown_table(self.columns, []))
        self._pq = pq.ParquetWriter(self.paths["parquet"], self.schema)
        self._buffer: list[dict[str, Any]] = []
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        clean = {c: self._value(c, row.get(c)) for c in self.columns}
        self._csv.writerow(["" if (isinstance(v, float) and math.isnan(v)) else v
                            for v in clean.values()])
        self._md.write("| " + " | ".join(md_cell(v) for v in clean.values()) + " |\n")
        self._buffer.append(clean)
        self.count += 1
        if len(self._buffer) >= PARQUET_BATCH:
            self._flush()

    def _value(self, column: str, value: Any) -> Any:
        if column in self.ints:
            return int(value) if value is not None and value != "" else None
        if column in self.numeric:
            try:
                return float(value) if value is not None and value != "" else math.nan
            except (TypeError, ValueError):
                return math.nan
        return "" if value is None else str(value)

    def _flush(self) -> None:
        import pyarrow as pa

        if self._buffer:
            self._pq.write_table(pa.Table.from_pylist(self._buffer, schema=self.schema))
            self._buffer.clear()

    def close(self) -> None:
        self._flush()
        self._pq.close()
        self._csv_fh.close()
        self._md.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Running:
    """Welford's running count, mean and M2 of one metric."""

    __slots__ = ("n", "mean", "m2")

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else math.nan


class GroupStats:
    """Running per-group statistics of the numeric columns (finite values of done pairs)."""

    def __init__(self, keys: Sequence[str], metrics: Sequence[str]):
        self.keys, self.metrics = tuple(keys), tuple(metrics)
        self.groups: dict[tuple[str, ...], dict[str, Any]] = {}

    def add(self, row: dict[str, Any]) -> None:
        key = tuple(str(row.get(k, "")) or "(none)" for k in self.keys)
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = {"pairs": 0, "done": 0, "failed": 0,
                                    "stats": {m: _Running() for m in self.metrics}}
        g["pairs"] += 1
        status = row.get("status")
        if status == "failed":
            g["failed"] += 1
        if status != "done":
            return
        g["done"] += 1
        for m, acc in g["stats"].items():
            v = row.get(m)
            if isinstance(v, (int, float)) and math.isfinite(v):
                acc.add(float(v))

    def columns(self, metrics: Sequence[str] | None = None) -> list[str]:
        ms = self.metrics if metrics is None else metrics
        return [*self.keys, "pairs", "done", "failed",
                *(f"{m}_{s}" for m in ms for s in ("mean", "std"))]

    def rows(self, metrics: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One dict per group (first key in order of appearance, then sorted);
        ``<metric>_mean`` / ``<metric>_std``."""
        ms = self.metrics if metrics is None else metrics
        out = []
        first: dict[str, int] = {}
        for key in self.groups:  # the first key column keeps its order of appearance
            first.setdefault(key[0], len(first))
        for key in sorted(self.groups, key=lambda k: (first[k[0]], k[1:])):
            g = self.groups[key]
            row: dict[str, Any] = dict(zip(self.keys, key))
            row.update(pairs=g["pairs"], done=g["done"], failed=g["failed"])
            for m in ms:
                acc = g["stats"][m]
                row[f"{m}_mean"] = acc.mean if acc.n else math.nan
                row[f"{m}_std"] = acc.std
            out.append(row)
        return out

    def present(self) -> list[str]:
        """The metrics with at least one value in some group."""
        return [m for m in self.metrics
                if any(g["stats"][m].n for g in self.groups.values())]


def write_summaries(out_dir: Path, stats: dict[str, GroupStats]) -> dict[str, list[Path]]:
    """Write every grouping's summary as CSV, Parquet and Markdown, plus ``summary.md``."""
    written: dict[str, list[Path]] = {}
    parts = ["# Summary\n\nMean ± sample standard deviation over done pairs; `pairs`, `done` "
             "and `failed` count every pair of the group. Definitions: docs/metrics.md.\n"]
    if "job" in stats:
        gs = stats["job"]
        parts.append("\n## Headline (by job)\n\n"
                     + compact_markdown(gs, [m for m in HEADLINE if m in gs.present()]))
    if "job" in stats and "device_s" in stats["job"].present():
        parts.append("\n## Accounting (by job)\n\n" + accounting_markdown(stats["job"]))
    for name, gs in stats.items():
        metrics = gs.present()
        cols = gs.columns(metrics)
        rows = gs.rows(metrics)
        numeric = [c for c in cols if c not in gs.keys]
        with RowWriter(out_dir, f"summary_by_{name}", cols, numeric,
                       ints=("pairs", "done", "failed")) as w:
            for r in rows:
                w.write(r)
        written[name] = list(w.paths.values())
        parts.append(f"\n## By {name}\n\n" + compact_markdown(gs, metrics))
    (out_dir / "summary.md").write_text("".join(parts), encoding="utf-8")
    return written


def device_hours(gs: GroupStats) -> list[dict[str, Any]]:
    """Per group: done pairs, device-hours (the sum of ``device_s``: its mean times its count),
    device seconds per pair and the mean ``peak_memory_mb``."""
    out = []
    for r in gs.rows(["device_s", "peak_memory_mb"]):
        key = tuple(str(r[k]) for k in gs.keys)
        acc = gs.groups[key]["stats"]["device_s"]
        out.append({**{k: r[k] for k in gs.keys}, "done": r["done"],
                    "device_hours": acc.mean * acc.n / 3600 if acc.n else math.nan,
                    "device_s_per_pair": r["device_s_mean"],
                    "peak_memory_mb_mean": r["peak_memory_mb_mean"]})
    return out


def accounting_markdown(gs: GroupStats) -> str:
    """Device-hours per group (GPU-hours for a GPU job) and the mean peak memory."""
    rows = device_hours(gs)
    header = [*gs.keys, "done", "device_hours", "device_s_per_pair", "peak_memory_mb_mean"]
    return markdown_table(header, [[r[h] for h in header] for r in rows])


def compact_markdown(gs: GroupStats, metrics: Sequence[str]) -> str:
    """A Markdown table with one ``mean ± std`` cell per metric."""
    header = [*gs.keys, "pairs", "done", "failed", *metrics]
    body = []
    for r in gs.rows(metrics):
        cells = [r[k] for k in gs.keys] + [r["pairs"], r["done"], r["failed"]]
        for m in metrics:
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            cells.append("" if math.isnan(mean) else
                         fmt(mean) + ("" if math.isnan(std) else f" ± {fmt(std)}"))
        body.append(cells)
    return markdown_table(header, body)
