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
    ``params_digest`` (the pair's effective-parameter digest, the seed included) where any
    does; ``((), {})`` for a store whose rows override nothing but seeds (or of a release
    without ``params``)."""
    root = st.open_root(info.path)
    if not st.has(root, "params"):
        return (), {}
    job = {k: _lookup(info.job, k) for k in ROW_PARAMETERS}
    digests = st.read_column(root, "params_digest")
    parsed: dict[str, dict[str, Any]] = {}  # digest -> its row parameters (rows repeat)
    per_pair: dict[int, dict[str, Any]] = {}
    for start in range(0, info.n_pairs, BLOCK):
        block = None
        for j in range(start, min(start + BLOCK, info.n_pairs)):
            digest = str(digests[j])
            if not digest:  # an invalid row: no job
                continue
            if digest not in parsed:  # (read a block only where it holds a new digest)
                if block is None:
                    block = st.read_rows(root, "params", start, start + BLOCK)
                record = json.loads(str(block[j - start]))
                parsed[digest] = {k: _lookup(record, k) for k in ROW_PARAMETERS}
            per_pair[j] = parsed[digest]
    varying = tuple(k for k in ROW_PARAMETERS
                    if any(p[k] != job[k] for p in parsed.values()))
    if not varying:
        return (), {}
    keys = (*varying, "params_digest")
    return keys, {i: {**{k: p[k] for k in varying}, "params_digest": str(digests[i])}
                  for i, p in per_pair.items()}
