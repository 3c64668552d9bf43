"""The job parameters a manifest's rows override (``style_weight``, ``iterations`` ...), per
pair, from the effective job the store keeps for each (``params``): fields of the export, so
that the pairs of a parameter sweep can be told apart and filtered (``--where``)."""

from __future__ import annotations

import json
from typing import Any

from hpc_nst.batch import store as st
from hpc_nst.batch.manifest import OVERRIDE_COLUMNS
from hpc_nst.batch.reader import StoreInfo
from hpc_nst.config import ALIASES

#: Rows read at a time (the ``params`` strings: about a kilobyte each).
BLOCK = 8192
#: The per-row parameters an export may carry (``seed`` is always a field of its own).
ROW_PARAMETERS = tuple(k for k in OVERRIDE_COLUMNS if k != "seed")


def _lookup(record: dict[str, Any], key: str) -> Any:
    value: Any = record
    for part in ALIASES[key].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def row_parameters(info: StoreInfo) -> tuple[tuple[str, ...], dict[int, dict[str, Any]]]:
    """``(keys, {pair index: {key: value}})`` for the keys of :data:`ROW_PARAMETERS` whose
    effective value differs from the store's job for at least one pair, plus
    ``params_digest`` (the pair's effective-parameter digest) where any does; ``((), {})``
    for a store whose rows override nothing but seeds (or of a release without ``params``)."""
    root = st.open_root(info.path)
    if "params" not in root:
        return (), {}
    job = {k: _lookup(info.job, k) for k in ROW_PARAMETERS}
    parsed: dict[str, dict[str, Any]] = {}  # params JSON -> its row parameters (rows repeat)
    per_pair: dict[int, dict[str, Any]] = {}
    digests = st.read_column(root, "params_digest")
    for start in range(0, info.n_pairs, BLOCK):
        block = st.read_rows(root, "params", start, start + BLOCK)
        for j, text in enumerate(block):
            text = str(text)
            if not text:  # an invalid row: no job
                continue
            if text not in parsed:
                record = json.loads(text)
                parsed[text] = {k: _lookup(record, k) for k in ROW_PARAMETERS}
            per_pair[start + j] = parsed[text]
    varying = tuple(k for k in ROW_PARAMETERS
                    if any(p[k] != job[k] for p in parsed.values()))
    if not varying:
        return (), {}
    keys = (*varying, "params_digest")
    return keys, {i: {**{k: p[k] for k in varying}, "params_digest": str(digests[i])}
                  for i, p in per_pair.items()}
