"""The ``webdataset`` export: tar shards of ``<key>.<codec>`` + ``<key>.json``, streamed, and a
dataset card (``README.md``) whose YAML header types every field for ``datasets``."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import logging
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpc_nst.export.items import TEXT_FIELDS, ExportItem, field_dtype, to_json
from hpc_nst.fsutil import atomic_path, atomic_write

if TYPE_CHECKING:
    from hpc_nst.export.formats import ExportOptions

log = logging.getLogger(__name__)
_KEY_RE = re.compile(r"[^A-Za-z0-9_-]")
#: The WebDataset export's dataset card (the fields' types, for ``datasets``).
CARD_NAME = "README.md"


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


def write_webdataset(items: Iterator[ExportItem], out: Path,
                      opts: ExportOptions) -> dict[str, Any]:
    """``shard-000000.tar``...: per item ``<key>.<codec>`` and ``<key>.json`` (the fields;
    ``key`` is the pair id with characters other than letters, digits, ``_`` and ``-`` as
    ``_``, since WebDataset splits keys at the first dot). POSIX (pax) tar: a pair id may be
    longer than ustar's 100-character names (up to 200; `hpc-nst manifest` makes ids over
    100), and a short name's header is the same as ustar's."""
    shards: list[str] = []
    count = 0
    seen: set[str] = set()
    kinds: dict[str, set[type]] = {}  # each field's value types, for the card's features
    items = iter(items)
    while (first := next(items, None)) is not None:  # items stream into the tar: one in memory
        shards.append(f"shard-{len(shards):06d}.tar")
        with atomic_path(out / shards[-1]) as tmp, \
                tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for item in itertools.chain([first], itertools.islice(items, opts.shard_size - 1)):
                key = _KEY_RE.sub("_", item.pair_id)
                while key in seen:
                    key += "_"
                seen.add(key)
                _tar_add(tar, f"{key}.{opts.codec}", item.encode(opts.codec))
                # (a text field empty as "", not null: datasets types each field from the
                # first items, and a label null there failed every later labelled one)
                fields = {k: "" if v is None and k in TEXT_FIELDS else v
                          for k, v in item.fields.items()}
                _tar_add(tar, f"{key}.json", to_json(fields).encode())
                for k, v in fields.items():
                    kinds.setdefault(k, set()).add(type(v))
                count += 1
    result: dict[str, Any] = {"written": count, "kept": 0, "items": count}
    if shards and opts.dataset_card:
        text = webdataset_card(opts.codec, kinds)
        atomic_write(out / CARD_NAME, lambda tmp: Path(tmp).write_text(text, "utf-8"))
        shards = [*shards, CARD_NAME]
        result["card_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    elif shards:
        log.warning("%s: README.md there is not this export's card as it wrote it (your own, "
                    "or edited since): left as it is, so datasets.load_dataset(DIR) types "
                    "the fields from the first items; move it away and export again for the "
                    "card", out)
    return {**result, "files": shards, "paths": shards}


def webdataset_card(codec: str, kinds: dict[str, set[type]]) -> str:
    """``README.md`` beside the shards: a dataset card whose YAML header declares every
    field's type. ``datasets.load_dataset(DIR)`` reads it; without it, ``datasets`` types
    each field from the first five items, and a metric without a value there (``lsd_db`` of
    pairs without a target) typed the field null and failed on the first item that had one."""
    lines = ["---", "dataset_info:", "  features:",
             f"  - name: {codec}", "    dtype: audio", "  - name: json", "    struct:"]
    for key, seen in kinds.items():
        lines += [f"    - name: {json.dumps(key)}", f"      dtype: {field_dtype(key, seen)}"]
    lines += ["  - name: __key__", "    dtype: string", "  - name: __url__", "    dtype: string",
              "configs:", "- config_name: default", "  data_files:", "  - split: train",
              '    path: "shard-*.tar"', "---", "",
              "Exported by `hpc-nst export --format webdataset`: each item is `<key>."
              f"{codec}` (the output audio) and `<key>.json` (its fields). Load with "
              "`datasets.load_dataset(\"<this folder>\")` (the header above types every "
              "field) or `webdataset.WebDataset(<shard urls>)`; `.export.json` says which "
              "store, job and versions made it.", ""]
    return "\n".join(lines)
