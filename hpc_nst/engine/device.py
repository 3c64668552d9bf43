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


def check_memory(batch: int, bins: int, frames: int, width: int, device: torch.device,
                 style_frames: int = 0) -> None:
    """Raise :class:`TransferError` when a batch clearly cannot fit in the device's memory.

    ``frames``: the longest content (a window of it where windows are used), ``style_frames``
    the longest style; the advice names what is too long alone: the content (windows help),
    the style (read whole, by every window: only a shorter excerpt helps), or both."""
    longest = max(frames, style_frames)
    need = estimate_bytes(batch, bins, longest, width)
    have = available_bytes(device)
    if need <= 0.8 * have:
        return
    fits = [estimate_bytes(batch, bins, f, width) <= 0.8 * have for f in (frames, style_frames)]
    advice = []
    if not fits[0] or fits[1]:  # the content too long alone (or only the two at once)
        advice.append("process long content in windows (--set window_s=30) or split it into "
                      "shorter clips")
    if not fits[1]:
        advice.append("give a shorter excerpt of the style (it is read whole, by every window "
                      "too; a minute holds its statistics)")
    raise TransferError(
        f"inputs too long for memory: {batch} item(s) of up to {longest / 100:.0f} s (the "
        f"longest content {frames / 100:.0f} s, style {style_frames / 100:.0f} s) need about "
        f"{need / 2**30:.1f} GiB on {device}, {have / 2**30:.1f} GiB available; "
        + "; ".join(advice) + ", or use a smaller batch")


def fit_batch(bins: int, frames: int, width: int, device: torch.device,
              headroom: float = 0.7, cap: int = 256, share: int = 1) -> int:
    """The largest batch of ``frames``-frame items that fits in ``headroom`` of the device's
    available memory divided by ``share`` (the tasks running at once on this worker) by
    :func:`estimate_bytes` (at least 1, at most ``cap``)."""
    per_item = estimate_bytes(1, bins, frames, width) - FIXED_BYTES
    room = headroom * available_bytes(device) / max(1, share) - FIXED_BYTES
    return int(max(1, min(cap, room // max(per_item, 1))))
