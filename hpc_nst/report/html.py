"""``index.html``: a self-contained page (relative links only) from plain records.

Nothing is fetched from the network: styles are inline, images are PNG files and audio FLAC
files in the report folder. Pairs are grouped by ``pair_id``, so the same pair under several
methods (stores) sits together: its inputs once, then per method the four-panel figure, the
loss curves, the output and its key metrics.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hpc_nst.report.tables import fmt

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1400px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right;white-space:nowrap}
div.wide{overflow-x:auto}
th{background:#f2f2f2;position:sticky;top:0}
td.k,th.k{text-align:left}
section.pair{border-top:2px solid #888;margin-top:2em}
div.run{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;margin:.8em 0}
div.run img{max-width:100%;border:1px solid #ddd}
audio{width:260px;display:block}
.err{color:#a00;font-family:monospace;white-space:pre-wrap}
.small{font-size:12px;color:#555}
"""
KEY_METRICS = ("lsd_db", "lsd_dynamics_db", "timbre_mfcc", "timbre_dynamics_db",
               "pitch_jaccard", "style_top1", "style_prob", "judge_top1",
               "centroid_ratio", "bandwidth_ratio",
               "loss_total", "spectral_convergence", "runtime_s")


@dataclass
class RunDetail:
    """One (store, pair) shown in full."""

    job: str
    method: str
    figure: str | None  # relative paths inside the report folder
    loss: str | None
    output: str | None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class PairDetail:
    """A pair's inputs and its runs (one per store that has it in detail)."""

    pair_id: str
    labels: str
    inputs: dict[str, str]  # role -> relative audio path (content, style, target)
    runs: list[RunDetail] = field(default_factory=list)


@dataclass
class StoreSummary:
    label: str
    method: str
    path: str
    pairs: int
    done: int
    failed: int
    failures: list[tuple[str, str]] = field(default_factory=list)  # (pair_id, error), capped
    notes: list[str] = field(default_factory=list)


def _e(value: Any) -> str:
    return html.escape(fmt(value) if isinstance(value, float) else str(value))


def _href(rel: str) -> str:
    return html.escape(quote(rel))


def table_html(columns: Sequence[str], rows: Sequence[dict[str, Any]],
               keys: Sequence[str] = ()) -> str:
    """An HTML table of dict rows; ``keys`` columns are left-aligned."""
    head = "".join(f'<th class="{"k" if c in keys else ""}">{_e(c)}</th>' for c in columns)
    body = []
    for r in rows:
        cells = "".join(f'<td class="{"k" if c in keys else ""}">{_e(r.get(c, ""))}</td>'
                        for c in columns)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _audio(rel: str | None, label: str) -> str:
    if not rel:
        return ""
    kind = "audio/flac" if rel.endswith(".flac") else "audio/wav"
    return (f'<div><span class="small">{_e(label)}</span><audio controls preload="metadata">'
            f'<source src="{_href(rel)}" type="{kind}"></audio></div>')


def _metrics_line(metrics: dict[str, Any]) -> str:
    parts = [f"{k} = {_e(v)}" for k, v in metrics.items()
             if k in KEY_METRICS and isinstance(v, float) and not math.isnan(v)]
    return f'<p class="small">{"; ".join(parts)}</p>' if parts else ""


def _pair_html(p: PairDetail) -> str:
    out = [f'<section class="pair" id="{_href(p.pair_id)}"><h3>{_e(p.pair_id)}'
           f'{" — " + _e(p.labels) if p.labels else ""}</h3><div class="run">']
    out += [_audio(p.inputs.get(r), r) for r in ("content", "style", "target")]
    out.append("</div>")
    for r in p.runs:
        out.append(f"<h4>{_e(r.job)} <span class='small'>({_e(r.method)})</span></h4>")
        out.append('<div class="run">')
        if r.figure:
            out.append(f'<img src="{_href(r.figure)}" alt="spectrograms {_e(r.job)}" '
                       'width="1000">')
        if r.loss:
            out.append(f'<img src="{_href(r.loss)}" alt="loss curves {_e(r.job)}" width="420">')
        out.append(_audio(r.output, "output"))
        out.append("</div>" + _metrics_line(r.metrics))
    out.append("</section>")
    return "\n".join(out)


def render_index(
    title: str,
    stores: Sequence[StoreSummary],
    summaries: dict[str, tuple[list[str], list[dict[str, Any]], list[str], list[str]]],
    files: dict[str, list[str]],
    pairs: Sequence[PairDetail],
    notes: Sequence[str] = (),
) -> str:
    """The whole page. ``summaries``: grouping -> (columns, rows, key columns, headline
    columns); the headline columns are shown, the full table is folded below them."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<link rel="icon" href="data:,">',
             f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1>"]
    for n in notes:
        parts.append(f'<p class="small">{_e(n)}</p>')
    parts.append("<h2>Stores</h2>")
    parts.append(table_html(
        ["job", "method", "pairs", "done", "failed", "store"],
        [{"job": s.label, "method": s.method, "pairs": s.pairs, "done": s.done,
          "failed": s.failed, "store": s.path} for s in stores], keys=("job", "method", "store")))
    links = " · ".join(f'<a href="{_href(f)}">{_e(f)}</a>' for fs in files.values() for f in fs)
    parts.append(f'<p class="small">Tables: {links}</p>')
    for k, (name, (cols, rows, keys, headline)) in enumerate(summaries.items()):
        parts.append(f"<h2>Summary by {_e(name)}</h2>")
        head = '<div class="wide">' + table_html(headline, rows, keys) + "</div>"
        parts.append(head if k == 0 else  # the first grouping open, the others folded
                     f"<details><summary>{len(rows)} groups</summary>{head}</details>")
        parts.append(f"<details><summary>every metric by {_e(name)}</summary>"
                     f'<div class="wide">{table_html(cols, rows, keys)}</div></details>')
    if pairs:
        parts.append(f"<h2>Pairs ({len(pairs)} shown)</h2>")
        parts.append('<p class="small">' + " ".join(
            f'<a href="#{_href(p.pair_id)}">{_e(p.pair_id)}</a>' for p in pairs) + "</p>")
        parts += [_pair_html(p) for p in pairs]
    failed = [s for s in stores if s.failed]
    parts.append("<h2>Failed pairs</h2>")
    if not failed:
        parts.append("<p>None.</p>")
    for s in failed:
        parts.append(f"<h3>{_e(s.label)}: {s.failed} failed</h3>")
        parts.append(table_html(["pair_id", "error"],
                                [{"pair_id": p, "error": e} for p, e in s.failures],
                                keys=("pair_id", "error")))
        if s.failed > len(s.failures):
            parts.append(f'<p class="small">... and {s.failed - len(s.failures)} more '
                         '(failures.csv lists all).</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
