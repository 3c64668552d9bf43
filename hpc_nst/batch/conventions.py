"""xarray/CF conventions of the store: index coordinates, names and units, flat attributes."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import zarr

#: Root attributes holding structures: stored as JSON text (netCDF and xarray take flat
#: attributes only); stores of earlier releases hold them as nested JSON (both are read).
JSON_ATTRS = ("job", "manifest", "versions", "layout", "status_codes", "runs")
EPOCH_UNITS = "seconds since 1970-01-01T00:00:00Z"  # CF time units: xarray decodes datetimes


def compressor() -> zarr.codecs.ZstdCodec:
    return zarr.codecs.ZstdCodec(level=3)


def checked_compressors() -> list[Any]:
    """The small arrays' codecs: zstd, then a CRC-32C of each chunk, so that a flipped bit in
    a pair's id, seed, status or path is an unreadable chunk (named by ``hpc-nst verify``)
    rather than another value read back as if it were true (a third to two thirds of single
    bit flips still decoded under zstd alone). Stores of earlier releases have none."""
    return [compressor(), zarr.codecs.Crc32cCodec()]


#: ``long_name`` of the small arrays and coordinates (others: the name, underscores as spaces).
LONG_NAMES = {
    "pair": "pair id", "kind": "spectrogram kind", "term": "loss term", "timing": "timing",
    "row": "manifest line", "seed": "optimisation seed", "params": "effective job (JSON)",
    "attempts": "attempts", "status": "pair status", "frames": "valid frames",
    "samples": "valid samples", "records": "valid loss records",
    "started_at": "start of the pair's batch", "finished_at": "end of the pair's batch",
}
INDEX_LONG_NAMES = {"frame": "STFT frame index (hop_length samples apart)",
                    "sample": "audio sample index (at sample_rate)",
                    "record": "loss record index (every optim.record_every iterations)"}


def index_coord(root: zarr.Group, axis: str, size: int) -> None:
    """Create, or grow to ``size``, the integer index coordinate of ``axis``."""
    if axis in root:
        arr = root[axis]
        old = int(arr.shape[0])
        if size > old:
            arr.resize((size,))
            arr[old:] = np.arange(old, size, dtype=np.int64)
        return
    arr = root.create_array(axis, shape=(size,), chunks=(min(max(size, 1), 1 << 20),),
                            dtype="int64", fill_value=0, dimension_names=[axis],
                            compressors=checked_compressors(),
                            attributes={"long_name": INDEX_LONG_NAMES[axis], "units": "1"})
    arr[...] = np.arange(size, dtype=np.int64)


def root_attrs(root: zarr.Group) -> dict[str, Any]:
    """The root attributes with the structured ones (:data:`JSON_ATTRS`) decoded."""
    attrs = root.attrs.asdict() if hasattr(root.attrs, "asdict") else dict(root.attrs)
    for key in JSON_ATTRS:
        if isinstance(attrs.get(key), str):
            attrs[key] = json.loads(attrs[key])
    return attrs


def set_attrs(root: zarr.Group, **values: Any) -> None:
    """Update root attributes, the structured ones as JSON text."""
    root.attrs.update({k: json.dumps(v, sort_keys=True, default=list) if k in JSON_ATTRS
                       else v for k, v in values.items()})


