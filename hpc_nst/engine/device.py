"""Device choice and a memory check that turns an impossible request into a clear error."""

from __future__ import annotations

import psutil
import torch

from hpc_nst.errors import TransferError  # noqa: F401 (re-exported)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``cuda`` when present (or asked for), else ``cpu``; asking for absent CUDA is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda":
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not found:
            raise TransferError(f"--device {device}: this machine has no CUDA device "
                                "(torch.cuda.is_available() is False)")
        if (device.index or 0) >= found:
            raise TransferError(f"--device {device}: this machine has only {found} CUDA "
                                "device(s)")
    return device


#: Memory a step needs whatever its batch (the network, the optimiser's state, workspace).
FIXED_BYTES = 64 * 2**20


def estimate_bytes(batch: int, bins: int, frames: int, width: int) -> int:
    """Rough peak memory of one optimisation step: activations kept for the backward pass.

    Per input position the conv stack stores about ``w * (1 + 1/2 + 1/4 + 1/4)`` activations,
    each kept around three times (conv output, ReLU/mask, pooling), in float32.
    """
    return int(batch * bins * frames * width * 2.0 * 3 * 4) + FIXED_BYTES


def available_bytes(device: torch.device) -> int:
    """Memory this process can still use: on a GPU what is free plus what torch's allocator
    holds here (reusable, or in use by another task of this worker, which :func:`fit_batch`'s
    ``share`` accounts for); on a CPU the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free) + int(torch.cuda.memory_reserved(device))
    return int(psutil.virtual_memory().available)


#: The advice of :func:`check_memory` by what is longest: the content (windows help) or a
#: style (every window reads the whole style, so only a shorter style does).
MEMORY_ADVICE = {
    "content": "process long content in windows (--set window_s=30), split the audio into "
               "shorter clips, or use a smaller batch",
    "style": "the style is the longest input and is read whole by every window: give a "
             "shorter excerpt of it (a minute holds its statistics), or use a smaller batch",
}


def check_memory(batch: int, bins: int, frames: int, width: int, device: torch.device,
                 longest: str = "content") -> None:
    """Raise :class:`TransferError` when a batch clearly cannot fit in the device's memory;
    ``longest`` ("content" or "style") says which input sets ``frames``, for the advice."""
    need = estimate_bytes(batch, bins, frames, width)
    have = available_bytes(device)
    if need > 0.8 * have:
        seconds = frames / 100
        raise TransferError(
            f"inputs too long for memory: {batch} item(s) of up to {seconds:.0f} s (the "
            f"longest a {longest}) need about {need / 2**30:.1f} GiB on {device}, "
            f"{have / 2**30:.1f} GiB available; {MEMORY_ADVICE[longest]}"
        )


def fit_batch(bins: int, frames: int, width: int, device: torch.device,
              headroom: float = 0.7, cap: int = 256, share: int = 1) -> int:
    """The largest batch of ``frames``-frame items that fits in ``headroom`` of the device's
    available memory divided by ``share`` (the tasks running at once on this worker) by
    :func:`estimate_bytes` (at least 1, at most ``cap``)."""
    per_item = estimate_bytes(1, bins, frames, width) - FIXED_BYTES
    room = headroom * available_bytes(device) / max(1, share) - FIXED_BYTES
    return int(max(1, min(cap, room // max(per_item, 1))))
