"""Each done pair of a store as an :class:`ExportItem`: audio plus flat, typed metadata."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpc_nst.batch.labels import LABEL_COLUMNS, check_label_files, store_labels
from hpc_nst.batch.reader import InputChanges, StoreInfo, iter_pairs, metadata_names
from hpc_nst.batch.verify import check_audio, recorded_audio_digest
from hpc_nst.errors import UsageError
from hpc_nst.export.parameters import row_parameters

#: Report columns carried into an export (when ``--report`` is given): the quality metrics.
REPORT_METRICS = ("lsd_db", "lsd_dynamics_db", "timbre_mfcc", "timbre_dynamics_db",
                  "pitch_jaccard", "style_top1", "style_prob", "judge_top1", "judge_prob",
                  "judge_class", "output_class", "centroid_ratio", "bandwidth_ratio")


def report_fields() -> tuple[str, ...]:
    """:data:`REPORT_METRICS`, then the columns of the package's own metric groups (``level``:
    :mod:`hpc_nst.metrics.groups`); a plugin group's columns come from the report itself
    (:func:`report_metrics`), so an export needs no plugin loaded."""
    from hpc_nst.metrics.groups import builtin_columns

    return (*REPORT_METRICS, *builtin_columns())


def _group_columns(table: Any) -> list[str]:
    """The report table's columns that its metric groups added (the package's and any
    plugin's): those that are not the report's own."""
    from hpc_nst.report.evaluate import ID_COLUMNS, OTHER_METRICS, TEXT_COLUMNS

    own = {*ID_COLUMNS, *OTHER_METRICS, *TEXT_COLUMNS, *REPORT_METRICS}
    return [c for c in table.columns if c not in own and not str(c).startswith("loss_")]


#: The report's metrics measured against the pair's target (dropped where it changed since).
TARGET_METRICS = ("lsd_db", "lsd_dynamics_db", "timbre_mfcc", "timbre_dynamics_db",
                  "pitch_jaccard")
CODECS = ("wav", "flac")
#: The fields every item has (besides the metadata columns, ``loss_<term>`` and the metrics).
EXPORT_FIELDS = ("pair_id", "content", "style", "target", "seed", "job", "method",
                 "job_digest", "duration_s", "sample_rate", "device", "attempts",
                 "spectral_convergence")
#: Names the containers use themselves (the Parquet / audiofolder audio column).
CONTAINER_FIELDS = ("audio",)
#: Added to every item of an export whose codec is FLAC (:meth:`ExportItem.flac_gain_db`).
CODEC_FIELDS = ("flac_gain_db",)
#: Their types, for containers that fix a schema (Parquet): the others are text or float.
INT_FIELDS = ("seed", "sample_rate", "attempts")
TEXT_FIELDS = ("pair_id", "content", "style", "target", "job", "method", "job_digest",
               "device", "judge_class", "output_class", "init", "params_digest", *LABEL_COLUMNS)


def field_dtype(key: str, kinds: set[type]) -> str:
    """A field's type for the containers that declare one (``int64``, ``float64`` or
    ``string``; Parquet's schema, the WebDataset card), from the Python types of its values
    seen (``None`` ignored): known fields by name, so that a text field missing in the first
    items never becomes a number column; a field with no value yet is ``float64`` (a metric)."""
    kinds = kinds - {type(None)}
    if key in TEXT_FIELDS:
        return "string"
    if key in INT_FIELDS or (kinds and kinds <= {int}):
        return "int64"
    return "float64" if kinds <= {int, float} else "string"


log = logging.getLogger(__name__)
FLAC_PEAK = 1.0 - 2.0**-23  # the largest 24-bit sample


@dataclass(frozen=True)
class ExportItem:
    """One output: ``fields`` are JSON-able scalars (str, int, float or None), the same keys
    for every item of a store (in a stable order)."""

    pair_id: str
    audio: np.ndarray
    sample_rate: int
    fields: dict[str, Any]
    audio_digest: str = ""  # the store's checksum of this audio ("" where none was recorded)

    def flac_gain_db(self) -> float:
        """The gain its FLAC file is written with: 0, or what brings a peak beyond +-1 to
        just under it (the file's level is then that much under the store's and the
        report's level metrics)."""
        peak = float(np.abs(self.audio).max(initial=0.0))
        return round(20 * math.log10(FLAC_PEAK / peak), 6) if peak > FLAC_PEAK else 0.0

    def with_flac_gain(self) -> ExportItem:
        """This item with the field ``flac_gain_db`` (exports whose codec is FLAC)."""
        return dataclasses.replace(self, fields={**self.fields,
                                                 "flac_gain_db": self.flac_gain_db()})

    def encode(self, codec: str) -> bytes:
        """The audio as a ``wav`` (32-bit float, as stored) or ``flac`` (24-bit) file. FLAC
        holds no sample beyond +-1: louder audio is scaled down to fit as a whole (never
        clipped: the waveform's shape is kept) and the pair is named in the log."""
        import soundfile as sf

        buf = io.BytesIO()
        if codec == "flac":
            audio, peak = self.audio, float(np.abs(self.audio).max(initial=0.0))
            if peak > FLAC_PEAK:
                log.warning("%s: peak %.3g is beyond FLAC's +-1: scaled by %.2f dB to fit "
                            "(the item's flac_gain_db; --codec wav keeps the stored level)",
                            self.pair_id, peak, self.flac_gain_db())
                audio = audio * np.float32(FLAC_PEAK / peak)
            sf.write(buf, audio, self.sample_rate, format="FLAC", subtype="PCM_24")
            return buf.getvalue()
        channels = 1 if self.audio.ndim == 1 else self.audio.shape[1]
        with sf.SoundFile(buf, "w", self.sample_rate, channels, format="WAV",
                          subtype="FLOAT") as f:
            _no_peak_chunk(f)
            f.write(self.audio)
        return buf.getvalue()


#: libsndfile's SFC_SET_ADD_PEAK_CHUNK: its PEAK chunk of a float WAV holds the time of
#: writing, so two exports a second apart would differ (docs/store.md: reruns give the same
#: bytes). Turned off, the header keeps the chunk's room as a ``PAD `` chunk of zeros.
SFC_SET_ADD_PEAK_CHUNK = 0x1050


def _no_peak_chunk(f: Any) -> None:
    """Turn off the PEAK chunk of the float WAV ``f`` (a soundfile.SoundFile, before any
    data is written); a soundfile without the call fails loudly rather than silently
    writing timestamps."""
    import soundfile as sf

    lib, ffi = getattr(sf, "_snd", None), getattr(sf, "_ffi", None)
    if lib is None or ffi is None or not hasattr(f, "_file"):
        raise RuntimeError(f"soundfile {sf.__version__}: cannot turn off the PEAK chunk of a "
                           "float WAV (no libsndfile handle); exports would not be "
                           "byte-reproducible")
    if lib.sf_command(f._file, SFC_SET_ADD_PEAK_CHUNK, ffi.NULL, 0) != 0:  # SF_FALSE: off
        raise RuntimeError("libsndfile refused to turn off the PEAK chunk of a float WAV")


def _scalar(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def export_names(names: dict[str, str], reserved: set[str]) -> dict[str, str]:
    """Export field names for metadata columns (``{column: name}``): a name that is an export
    field, a container's own (``audio``), or looks like an audiofolder's file reference
    (``file_name``, ``<feature>_file_name``) is renamed (``meta_<name>``; ``<name>_meta`` for
    the file references, since ``meta_file_name`` would again read as one), and
    a rename that meets another column's name gets a number: no field ever overwrites another."""
    taken = set(reserved) | set(names.values())
    out: dict[str, str] = {}
    for column, name in names.items():
        if name.endswith("file_name"):
            new = f"{name}_meta"
        elif name in reserved:
            new = f"meta_{name}"
        else:
            out[column] = name
            continue
        stem, k = new, 2
        while new in taken:
            new, k = f"{stem}_{k}", k + 1
        taken.add(new)
        out[column] = new
    return out


def report_label(report: Path, info: StoreInfo) -> str:
    """The label under which the report folder ``report`` holds the rows of the store
    ``info``: found by the store's path in the report's ``stores.json``, and refused where the
    report covers another store only, or was made from an earlier store at that path (another
    job digest). A report from before ``stores.json`` is matched by the label alone."""
    import logging

    from hpc_nst.report import STORES_NAME

    if not report.is_dir():
        raise UsageError(f"--report {report}: no such folder; give the folder written by "
                         "hpc-nst report STORE -o DIR, or export without --report")
    record = report / STORES_NAME
    if not record.is_file():
        logging.getLogger(__name__).warning(
            "--report %s: no %s (a report of an earlier release): its rows are matched by "
            "the job label %r only", report, STORES_NAME, info.label)
        return info.label
    stores = json.loads(record.read_text("utf-8"))
    here = str(info.path.resolve())
    mine = [s for s in stores if s.get("store") == here]
    if not mine:
        covered = ", ".join(s.get("store", "?") for s in stores)
        raise UsageError(f"--report {report}: it does not cover {here} (it reports {covered}); "
                         f"run hpc-nst report {info.path} first")
    digest = info.attrs.get("job_digest")
    if mine[0].get("job_digest") != digest:
        raise UsageError(f"--report {report}: made from an earlier store at {here} (job digest "
                         f"{mine[0].get('job_digest')}, the store's is now {digest}); report "
                         "it again")
    return str(mine[0]["label"])


def report_metrics(report: Path | None, label: str) -> dict[str, dict[str, Any]]:
    """``pair_id -> {metric: value}`` from a report folder's ``pairs.parquet`` (or
    ``pairs.csv``), the rows of job ``label`` only."""
    if report is None:
        return {}
    import pandas as pd


    if (report / "pairs.parquet").is_file():
        table = pd.read_parquet(report / "pairs.parquet")
    elif (report / "pairs.csv").is_file():
        table = pd.read_csv(report / "pairs.csv")
    else:
        raise UsageError(f"--report {report}: no pairs.parquet or pairs.csv there (the "
                         "folder written by hpc-nst report)")
    if "job" in table:
        table = table[table["job"].astype(str) == label]
    if table.empty:
        raise UsageError(f"--report {report}: no rows of job {label!r} (report this store "
                         "with hpc-nst report first, or export without --report)")
    if "status" in table:  # a pair not done when reported has no metrics
        table = table[table["status"].astype(str) == "done"]
    cols = [c for c in REPORT_METRICS if c in table] + _group_columns(table)
    if "audio_digest" in table:  # reports of earlier releases have none: not compared
        cols.append("audio_digest")
    if "target" in table:  # the target its metrics were measured against
        table = table.assign(target=table["target"].fillna("").astype(str))
        cols.append("target")
    return {str(r["pair_id"]): {c: _scalar(r[c]) if not isinstance(r[c], str) else r[c]
                                for c in cols} for _, r in table.iterrows()}


def iter_items(info: StoreInfo, only: list[int] | None = None,
               report: Path | None = None, skip_bad: bool = False,
               bad: list[str] | None = None,
               labels: list[Path] | None = None) -> Iterator[ExportItem]:
    """Every done pair of ``info`` (or those at indices ``only``) as an :class:`ExportItem`;
    a pair failing its audio checksum stops the export (or, ``skip_bad``, is left out, its id
    appended to ``bad``). The report is read now: a bad ``report`` is refused at the call.

    ``content_label``/``style_label`` come from the manifest's label columns, ``labels.csv``
    beside it (``hpc-nst dataset triplets`` writes one) and the ``labels`` CSVs, as in the
    report; a label no pair has is left out."""
    metrics = report_metrics(report, report_label(report, info) if report else info.label)
    check_label_files(labels or [])
    found = store_labels(info, list(labels or []))
    return _items(info, only, metrics, skip_bad, [] if bad is None else bad, found)


def _items(info: StoreInfo, only: list[int] | None, metrics: dict[str, dict[str, Any]],
           skip_bad: bool, bad: list[str],
           labels: dict[str, dict[str, str]]) -> Iterator[ExportItem]:
    label_cols = [c for c in LABEL_COLUMNS if c in info.metadata_columns
                  or any(got.get(c) for got in labels.values())]
    # the report's columns, in the report's order (a plugin group's too, from the report)
    found = list(dict.fromkeys(k for m in metrics.values() for k in m))
    own = report_fields()
    metric_keys = [k for k in (*own, *found)
                   if k in found and k not in ("audio_digest", "target")]
    metric_keys = list(dict.fromkeys(metric_keys))
    # (with --report or not, a manifest column gets the same name; a plugin group's only
    # with the report that has it)
    param_keys, params = row_parameters(info)  # a sweep's per-row style_weight, ...
    reserved = {*EXPORT_FIELDS, *CODEC_FIELDS, *(f"loss_{t}" for t in info.terms),
                *own, *metric_keys, *CONTAINER_FIELDS, *label_cols, *param_keys}
    meta_names = export_names({k: v for k, v in metadata_names(info).items()
                               if k not in label_cols}, reserved)  # (labels hold them)
    renamed = [f"{k} -> {v}" for k, v in meta_names.items() if k != v]
    if renamed:
        log.warning("manifest column(s) renamed in the export, as their names are the "
                    "export's own fields (or read as audiofolder file references): %s",
                    ", ".join(renamed))
    job = {"job": info.label, "method": info.method,
           "job_digest": str(info.attrs.get("job_digest", ""))}
    stale: list[str] = []  # done pairs computed again since the report: its metrics dropped
    unreported: list[str] = []  # done pairs without a metric in the report
    retargeted: list[str] = []  # a target changed since the report: its target metrics dropped
    changes = InputChanges(info)
    for pair in iter_pairs(info, with_audio=True, only=only, with_losses=True):
        if pair.status != "done":
            continue
        changes.check(pair)
        if not check_audio(info, pair, skip_bad):
            bad.append(pair.pair_id)
            continue
        if pair.audio is None:
            continue
        fields: dict[str, Any] = {
            "pair_id": pair.pair_id, "content": pair.paths[0], "style": pair.paths[1],
            "target": pair.paths[2],
            **{meta_names[k]: v for k, v in pair.metadata.items() if k in meta_names},
            # a label file's, else the manifest column's the store keeps (a moved manifest)
            **{c: labels.get(pair.pair_id, {}).get(c) or pair.metadata.get(c) or None
               for c in label_cols},
            "seed": pair.seed, **job,
            **{k: params.get(pair.index, {}).get(k) for k in param_keys},
            "duration_s": round(len(pair.audio) / info.sample_rate, 6),
            "sample_rate": info.sample_rate, "device": pair.device, "attempts": pair.attempts,
            "spectral_convergence": _scalar(pair.spectral_convergence),  # None: no GL ran
        }
        for t, term in enumerate(info.terms):
            final = math.nan
            if pair.losses is not None and pair.records > 0:
                final = float(pair.losses[t, pair.records - 1])
            fields[f"loss_{term}"] = _scalar(final)
        got = metrics.get(pair.pair_id, {})
        digest = recorded_audio_digest(pair.checksum)
        if got.get("audio_digest") and digest and got["audio_digest"] != digest:
            stale.append(pair.pair_id)  # the report measured an earlier output of this pair
            got = {}
        if "target" in got and got["target"] != str(pair.paths[2] or ""):
            retargeted.append(pair.pair_id)  # measured against the target recorded before
            got = {k: v for k, v in got.items() if k not in TARGET_METRICS}
        fields.update({k: got.get(k) for k in metric_keys})
        if metrics and pair.pair_id not in metrics:
            unreported.append(pair.pair_id)
        yield ExportItem(pair.pair_id, np.asarray(pair.audio, np.float32), info.sample_rate,
                         fields, digest)
    for ids, why in ((stale, "were computed again after the report (their audio is not the "
                              "one it measured)"),
                     (unreported, "have no metrics in the report (it was made before they "
                                  "were done?)")):
        if ids:
            log.warning("%d done pair(s) %s, e.g. %s: their metric fields are left empty, and "
                        "a --where on a metric leaves them out; rerun hpc-nst report for this "
                        "store", len(ids), why, ", ".join(ids[:3]))
    if changes.ids:
        log.warning(changes.message())
    if retargeted:
        log.warning("%d done pair(s) have another target than when the report measured them, "
                    "e.g. %s: their target-based fields (%s) are left empty, and a --where on "
                    "them leaves them out; rerun hpc-nst report for this store",
                    len(retargeted), ", ".join(retargeted[:3]), ", ".join(TARGET_METRICS))



def to_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, allow_nan=False)
