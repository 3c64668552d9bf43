"""Each done pair of a store as an :class:`ExportItem`: audio plus flat, typed metadata."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpc_nst.batch.reader import StoreInfo, iter_pairs, metadata_names
from hpc_nst.batch.verify import check_audio

#: Report columns carried into an export (when ``--report`` is given): the quality metrics.
REPORT_METRICS = ("lsd_db", "lsd_dynamics_db", "timbre_mfcc", "timbre_dynamics_db",
                  "pitch_jaccard", "style_top1", "style_prob", "judge_top1", "judge_prob",
                  "judge_class", "output_class", "centroid_ratio", "bandwidth_ratio")
CODECS = ("wav", "flac")
#: The fields every item has (besides the metadata columns, ``loss_<term>`` and the metrics).
EXPORT_FIELDS = ("pair_id", "content", "style", "target", "seed", "job", "method",
                 "job_digest", "duration_s", "sample_rate", "device", "attempts",
                 "spectral_convergence")
#: Their types, for containers that fix a schema (Parquet): the others are text or float.
INT_FIELDS = ("seed", "sample_rate", "attempts")
TEXT_FIELDS = ("pair_id", "content", "style", "target", "job", "method", "job_digest",
               "device", "judge_class", "output_class")


@dataclass(frozen=True)
class ExportItem:
    """One output: ``fields`` are JSON-able scalars (str, int, float or None), the same keys
    for every item of a store (in a stable order)."""

    pair_id: str
    audio: np.ndarray
    sample_rate: int
    fields: dict[str, Any]

    def encode(self, codec: str) -> bytes:
        """The audio as a ``wav`` (32-bit float, as stored) or ``flac`` (24-bit) file."""
        import soundfile as sf

        buf = io.BytesIO()
        if codec == "flac":
            sf.write(buf, np.clip(self.audio, -1.0, 1.0), self.sample_rate, format="FLAC",
                     subtype="PCM_24")
        else:
            sf.write(buf, self.audio, self.sample_rate, format="WAV", subtype="FLOAT")
        return buf.getvalue()


def _scalar(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def report_metrics(report: Path | None, label: str) -> dict[str, dict[str, Any]]:
    """``pair_id -> {metric: value}`` from a report folder's ``pairs.parquet`` (or
    ``pairs.csv``), the rows of job ``label`` only."""
    if report is None:
        return {}
    import pandas as pd

    from hpc_nst.errors import UsageError

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
    cols = [c for c in REPORT_METRICS if c in table]
    return {str(r["pair_id"]): {c: _scalar(r[c]) if not isinstance(r[c], str) else r[c]
                                for c in cols} for _, r in table.iterrows()}


def iter_items(info: StoreInfo, only: list[int] | None = None,
               report: Path | None = None, skip_bad: bool = False) -> Iterator[ExportItem]:
    """Every done pair of ``info`` (or those at indices ``only``) as an :class:`ExportItem`;
    a pair failing its audio checksum stops the export (or, ``skip_bad``, is left out)."""
    metrics = report_metrics(report, info.label)
    # A metadata column never overwrites an export field, nor looks like an audiofolder's
    # file reference (``file_name``, ``<feature>_file_name``).
    reserved = {*EXPORT_FIELDS, *(f"loss_{t}" for t in info.terms), *REPORT_METRICS}
    meta_names = {k: f"{v}_meta" if v.endswith("file_name") else
                  f"meta_{v}" if v in reserved else v
                  for k, v in metadata_names(info).items()}
    job = {"job": info.label, "method": info.method,
           "job_digest": str(info.attrs.get("job_digest", ""))}
    metric_keys = sorted({k for m in metrics.values() for k in m},
                         key=lambda k: REPORT_METRICS.index(k))
    for pair in iter_pairs(info, with_audio=True, only=only, with_losses=True):
        if pair.status != "done" or pair.audio is None or not check_audio(info, pair, skip_bad):
            continue
        fields: dict[str, Any] = {
            "pair_id": pair.pair_id, "content": pair.paths[0], "style": pair.paths[1],
            "target": pair.paths[2],
            **{meta_names[k]: v for k, v in pair.metadata.items()},
            "seed": pair.seed, **job,
            "duration_s": round(len(pair.audio) / info.sample_rate, 6),
            "sample_rate": info.sample_rate, "device": pair.device, "attempts": pair.attempts,
            "spectral_convergence": _scalar(pair.spectral_convergence),
        }
        for t, term in enumerate(info.terms):
            final = math.nan
            if pair.losses is not None and pair.records > 0:
                final = float(pair.losses[t, pair.records - 1])
            fields[f"loss_{term}"] = _scalar(final)
        got = metrics.get(pair.pair_id, {})
        fields.update({k: got.get(k) for k in metric_keys})
        yield ExportItem(pair.pair_id, np.asarray(pair.audio, np.float32), info.sample_rate,
                         fields)


def to_json(fields: dict[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, allow_nan=False)
