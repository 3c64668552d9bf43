"""``hpc-nst report``: stores in, tables and an offline HTML report out.

Stores are read one after the other, pair by pair (:func:`hpc_nst.batch.reader.iter_pairs`);
each row goes straight to the table files and the running group statistics, so memory does not
grow with the number of pairs. Only ``details`` pairs get figures and audio in the HTML page (the
first done ones met, each shown with every store where it is done), and the first ``failures``
failed pairs of each store are listed there (``failures.csv`` lists them all).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import logging
import math
import shutil
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpc_nst.batch import store as st
from hpc_nst.batch.labels import store_labels
from hpc_nst.batch.reader import (
    InputChanges,
    PairData,
    StoreInfo,
    iter_pairs,
    read_spectrograms,
    store_info,
)
from hpc_nst.batch.verify import check_audio
from hpc_nst.config import STFTConfig
from hpc_nst.errors import StoreError, UsageError
from hpc_nst.fsutil import highest_missing
from hpc_nst.report import STORES_NAME
from hpc_nst.report import html as H
from hpc_nst.report.evaluate import (
    INT_COLUMNS,
    Evaluator,
    columns,
    metric_columns,
    report_terms,
)
from hpc_nst.report.tables import GROUPINGS, HEADLINE, GroupStats, RowWriter, write_summaries

log = logging.getLogger(__name__)


@dataclass
class ReportOptions:
    """Options of :func:`build_report` (the ``hpc-nst report`` flags)."""

    groups: tuple[str, ...] | None = None  # None: every group, the registered ones too
    classifier: Path | None = None  # None: the shipped classifier, when there is one
    judge: Path | None = None  # None: the shipped EQ-proof judge, when there is one
    details: int = 100  # pairs shown with figures and audio (each with every store that has it)
    failures: int = 200  # failed pairs per store listed in the HTML page
    labels: list[Path] = field(default_factory=list)
    inputs_dir: Path | None = None
    title: str = "hpc-nst evaluation report"
    progress: Callable[[str], None] | None = None
    progress_every: int = 1000
    skip_bad: bool = False  # report pairs failing their audio checksum as failed (else refuse)


@dataclass
class ReportResult:
    out_dir: Path
    index: Path
    rows: int
    stores: list[H.StoreSummary]
    notes: list[str]
    seconds: float


def _labels(paths: Sequence[Path]) -> list[str]:
    """Unique job labels from store names (``name``, ``name-2``, ...), unique also as the
    folder names of their figures and audio (``my eq#1`` and ``my_eq_1`` shared one)."""
    out: list[str] = []
    for p in paths:
        base = p.name[:-5] if p.name.endswith(".zarr") else p.name
        label, k = base, 2
        while _safe(label) in {_safe(x) for x in out}:
            label, k = f"{base}-{k}", k + 1
        out.append(label)
    return out


def _classifier(opts: ReportOptions, notes: list[str]) -> Any:
    from hpc_nst.metrics.style_class import load_classifier
    from hpc_nst.models.checkpoint import DEFAULT_CHECKPOINT

    return _optional_model(opts, notes, "style", opts.classifier, DEFAULT_CHECKPOINT,
                           load_classifier, "Classifier-judged style", "--classifier")


def _judge(opts: ReportOptions, notes: list[str]) -> Any:
    from hpc_nst.metrics.judge import DEFAULT_JUDGE, load_judge

    return _optional_model(opts, notes, "judge", opts.judge, DEFAULT_JUDGE, load_judge,
                           "EQ-proof judge", "--judge")


def _optional_model(opts: ReportOptions, notes: list[str], group: str, path: Path | None,
                    default: Path, load: Callable[[Path | None], Any], what: str,
                    flag: str) -> Any:
    """The model a metric group needs, or None with a note saying why it was not computed."""
    if opts.groups is not None and group not in opts.groups:
        return None
    from hpc_nst.errors import CheckpointError

    if path is None and not default.is_file():
        notes.append(f"{what} not computed: none is shipped in this build (pass {flag}).")
        return None
    try:
        return load(path)
    except CheckpointError as exc:
        if path is not None:  # named by the user: refused, not silently left out
            raise UsageError(f"{flag} {path}: {exc}") from None
        notes.append(f"{what} not computed: {exc}")
        return None


class _Assets:
    """Figures and audio copied into the report folder (inputs once per source file)."""

    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        self.inputs: dict[str, str | None] = {}

    def input_audio(self, path: Path | None, sr: int) -> str | None:
        from hpc_nst.audio.io import AudioError, load_audio, write_audio

        if path is None:
            return None
        key = str(path)
        if key not in self.inputs:
            digest = hashlib.sha256(key.encode()).hexdigest()[:10]
            rel = f"audio/inputs/{path.stem[:60]}-{digest}.flac"
            try:
                write_audio(self.out_dir / rel, load_audio(path, sr), sr)
                self.inputs[key] = rel
            except (AudioError, OSError):
                self.inputs[key] = None
        return self.inputs[key]

    def run(self, info: StoreInfo, pair: PairData, metrics: dict[str, Any],
            terms: list[str]) -> H.RunDetail:
        from hpc_nst.audio.io import write_audio
        from hpc_nst.report.figures import loss_figure, pair_figure

        job = info.label
        stft = STFTConfig(**info.job.get("stft", {}))
        base = f"{_safe(job)}/{pair.pair_id}"
        figure: str | None = f"figures/{base}.png"
        try:
            specs = read_spectrograms(info, pair.index)
        except StoreError as exc:  # the audio passed its checksum: the pair stays, no figure
            log.warning("%s: no figure for %s: %s", job, pair.pair_id, exc)
            specs = {}
        if specs and all(s.size for s in specs.values()):
            pair_figure(specs, self.out_dir / str(figure), stft, title=f"{pair.pair_id} — {job}",
                        optimised=pair.records > 0)  # no loss record: no optimisation
        else:  # no spectrogram stored (should not happen for a done pair)
            figure = None
        loss = None
        if pair.losses is not None and pair.records > 0:
            every = int(info.job.get("optim", {}).get("record_every", 1))
            loss = f"figures/{base}.loss.png"
            loss_figure(pair.losses, pair.records, terms, self.out_dir / loss, every,
                        title=f"{pair.pair_id} — {job}")
        output = None
        if pair.audio is not None:
            output = f"audio/{base}.flac"
            write_audio(self.out_dir / output, pair.audio, info.sample_rate)
        return H.RunDetail(job, info.method, figure, loss, output, metrics)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._+-" else "_" for c in name) or "_"


def build_report(stores: Sequence[str | Path], out_dir: str | Path,
                 opts: ReportOptions | None = None) -> ReportResult:
    """Aggregate ``stores`` into tables and ``index.html`` under ``out_dir``."""
    opts = opts or ReportOptions()
    t0 = time.perf_counter()
    out = Path(out_dir)
    if out.is_dir() and not any((out / n).is_file() for n in (STORES_NAME, "pairs.csv")) \
            and any(not e.name.startswith(".partial-") for e in out.iterdir()):
        # (an earlier report has them: it is replaced; .partial-*: one that was killed)
        raise UsageError(f"{out}: a folder of other files (not a report folder: no "
                         f"{STORES_NAME} or pairs.csv); a report writes tables, figures and "
                         "audio/ there and replaces files of those names: choose a new -o (e.g. "
                         f"{out / 'report'})")
    created = highest_missing(out)
    try:
        if out.is_symlink() and not out.exists():
            raise FileExistsError(17, "a broken symbolic link", str(out))
        out.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=out, prefix=".partial-"))
    except (FileExistsError, NotADirectoryError) as exc:
        raise UsageError(f"{out}: cannot create the report folder: a file is in the way "
                         f"({exc.filename or out})") from exc
    except OSError as exc:
        raise UsageError(f"{out}: cannot write the report there ({exc.strerror}); give a "
                         "folder you can write") from None
    done = False
    try:  # the tables and the page written aside in DIR and moved in once all is read: a
        # report that fails leaves the earlier one's tables and page (figures and audio,
        # written in place under the same names, may be newer)
        result = _build(stores, work, out, opts, t0)
        for entry in sorted(work.iterdir()):
            entry.replace(out / entry.name)
        done = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not done and created is not None:  # a folder this report made: gone again
            shutil.rmtree(created, ignore_errors=True)
    return ReportResult(out, out / "index.html", result.rows, result.stores, result.notes,
                        time.perf_counter() - t0)


def _build(stores: Sequence[str | Path], out: Path, assets_dir: Path, opts: ReportOptions,
           t0: float) -> ReportResult:
    """The report of ``stores``: its tables and page written into the (new, empty) folder
    ``out``, its figures and audio under ``assets_dir``."""
    paths = [Path(s) for s in stores]
    infos = [store_info(p, label) for p, label in zip(paths, _labels(paths))]
    for info in infos:
        st.warn_lost(info.path, st.read_column(st.open_root(info.path), "status"))
    say = opts.progress or (lambda msg: None)
    notes: list[str] = []
    terms = report_terms(*(info.terms for info in infos))
    metrics = metric_columns(terms)
    evaluator = Evaluator(opts.groups, _classifier(opts, notes), terms=terms,
                          judge=_judge(opts, notes))
    stats = {name: GroupStats(keys, metrics) for name, keys in GROUPINGS.items()}
    assets = _Assets(assets_dir)
    details: dict[tuple[str, ...], H.PairDetail] = {}
    there = functools.lru_cache(maxsize=65536)(Path.is_file)  # (inputs repeat across pairs)
    shown: set[str] = set()  # pair ids with a section (one per set of inputs)
    summaries: list[H.StoreSummary] = []
    rows = 0
    with RowWriter(out, "pairs", columns(terms), metrics, INT_COLUMNS) as writer, \
            open(out / "failures.csv", "w", newline="", encoding="utf-8") as fail_fh:
        failures = csv.writer(fail_fh, lineterminator="\n")
        failures.writerow(["job", "pair_id", "error"])
        for info in infos:
            evaluator.labels = store_labels(info, opts.labels)
            store_terms = list(info.terms)
            summary = H.StoreSummary(info.label, info.method, str(info.path), 0, 0, 0)
            changes = InputChanges(info, opts.inputs_dir)
            unfound: set[Path] = set()  # input files of done pairs that are not there
            for pair in iter_pairs(info, opts.inputs_dir):
                changed = changes.check(pair)
                if pair.status == "done":
                    unfound.update(p for p in (pair.content, pair.style, pair.target)
                                   if p is not None and not there(p))
                if pair.status == "done" and not check_audio(info, pair, opts.skip_bad):
                    pair.status, pair.audio = "failed", None
                    pair.error = "fails verification (hpc-nst verify): audio checksum mismatch"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    row = evaluator.row(info, pair)
                if changed:  # its content and style side measured on today's files
                    row["notes"] = "; ".join(x for x in (
                        row.get("notes"), "input files changed since it was computed") if x)
                writer.write(row)
                for gs in stats.values():
                    gs.add(row)
                rows += 1
                summary.pairs += 1
                if pair.status == "done":
                    summary.done += 1
                    if pair.pair_id in shown or len(details) < opts.details:
                        shown.add(pair.pair_id)
                        _add_detail(details, assets, info, pair, row, store_terms)
                elif pair.status == "failed":
                    summary.failed += 1
                    failures.writerow([info.label, pair.pair_id, pair.error])
                    if len(summary.failures) < opts.failures:
                        summary.failures.append((pair.pair_id, pair.error))
                if rows % opts.progress_every == 0:
                    say(f"{rows} rows ({info.label}: {summary.pairs}/{info.n_pairs}), "
                        f"{rows / (time.perf_counter() - t0):.0f} rows/s")
            summaries.append(summary)
            if unfound:  # (the metrics that need them are empty: said, not only per row)
                notes.append(
                    f"{info.label}: {len(unfound)} input file(s) of its done pairs not "
                    f"found (e.g. {min(unfound)}): the metrics that need them are left empty; "
                    "if the inputs moved, pass --inputs-dir DIR (the folder the manifest's "
                    "relative paths resolve against)")
            if changes.ids:
                notes.append(f"{info.label}: {changes.message()}")
    ids = Counter(k[0] for k in details)
    if any(n > 1 for n in ids.values()):
        notes.append(f"{sum(n > 1 for n in ids.values())} pair id(s) shown name other input "
                     "files (or labels) in some stores than in others (stores of other "
                     "manifests?): each set of inputs has a section of its own")
    files = {"pairs": [p.name for p in writer.paths.values()], "failures": ["failures.csv"]}
    for name, written in write_summaries(out, stats).items():
        files[name] = [p.name for p in written]
    files["summary"] = ["summary.md"]
    tables = {}
    for name, gs in stats.items():
        metrics = gs.present()
        cols = _compact_columns(gs, metrics)
        headline = _compact_columns(gs, [m for m in HEADLINE if m in metrics])
        tables[name] = (cols, _compact_rows(gs, metrics), list(gs.keys), headline)
    models = {flag: str(Path(path).resolve()) if path else "shipped"
              for flag, path, model in (("classifier", opts.classifier, evaluator.classifier),
                                        ("judge", opts.judge, evaluator.judge))
              if model is not None}  # which ones made the style and judge columns
    record = [{"label": i.label, "store": str(i.path.resolve()), "method": i.method,
               "job_digest": i.attrs.get("job_digest"), "models": models} for i in infos]
    (out / STORES_NAME).write_text(json.dumps(record, indent=1), encoding="utf-8")
    files["stores"] = [STORES_NAME]
    index = out / "index.html"
    index.write_text(H.render_index(opts.title, summaries, tables, files,
                                    list(details.values()), notes), encoding="utf-8")
    return ReportResult(out, index, rows, summaries, notes, time.perf_counter() - t0)


def _compact_columns(gs: GroupStats, metrics: Sequence[str]) -> list[str]:
    return [*gs.keys, "pairs", "done", "failed", *metrics]


def _compact_rows(gs: GroupStats, metrics: Sequence[str]) -> list[dict[str, Any]]:
    from hpc_nst.report.tables import fmt

    out = []
    for r in gs.rows(metrics):
        row = {k: r[k] for k in (*gs.keys, "pairs", "done", "failed")}
        for m in metrics:
            mean, std = r[f"{m}_mean"], r[f"{m}_std"]
            row[m] = "" if math.isnan(mean) else \
                fmt(mean) + ("" if math.isnan(std) else f" ± {fmt(std)}")
        out.append(row)
    return out


def _add_detail(details: dict[tuple[str, ...], H.PairDetail], assets: _Assets,
                info: StoreInfo, pair: PairData, row: dict[str, Any], terms: list[str]) -> None:
    """The pair's section, one per pair id and set of inputs: stores of the same pair ids
    made from other files (another manifest) get a section of their own, named after the
    first store that has it (their outputs were shown beside the first store's inputs)."""
    labels = " → ".join(x for x in (row["content_label"], row["style_label"]) if x)
    key = (pair.pair_id, *(str(p or "") for p in (pair.content, pair.style, pair.target)),
           labels)
    entry = details.get(key)
    if entry is None:
        sr = info.sample_rate
        inputs = {role: assets.input_audio(path, sr) for role, path in
                  (("content", pair.content), ("style", pair.style), ("target", pair.target))}
        same_id = any(k[0] == pair.pair_id for k in details)
        entry = details[key] = H.PairDetail(
            f"{pair.pair_id} ({info.label}'s inputs)" if same_id else pair.pair_id, labels,
            {k: v for k, v in inputs.items() if v})
    entry.runs.append(assets.run(info, pair, row, terms))


def stderr_progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
