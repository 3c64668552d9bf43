"""Batch sizes: the automatic choice, and cutting a batch where padding would cost too much.

``--batch-size auto`` (the default) takes :data:`AUTO_CPU_BATCH` pairs per batch for CPU
workers (the CPU engine optimises each pair alone: the batch only groups pairs into tasks) and
:data:`AUTO_GPU_BATCH` for GPU workers, whose worker then fits each batch to its device: at
most as many pairs as fit in its free memory (:func:`hpc_nst.engine.device.fit_batch`), cut
where padding the shorter pairs to the longest would exceed :data:`MAX_PADDING` of the work.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

AUTO_CPU_BATCH, AUTO_GPU_BATCH = 4, 64
#: The most of a padded batch's work that may be padding (frames computed for nothing).
MAX_PADDING = 0.15


def gpu_workers(device: str, cluster_kind: str, gpus: int | None) -> bool:
    """Whether the workers will optimise on GPUs."""
    if device == "cpu" or gpus == 0:
        return False
    if device.startswith("cuda"):
        return True
    if cluster_kind != "local":  # batch schedulers: a GPU per worker unless --gpus 0
        return True
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return False


def resolve_batch_size(value: str | int, device: str = "auto", cluster_kind: str = "local",
                       gpus: int | None = None) -> tuple[int, str]:
    """``(batch size, why)`` for ``--batch-size`` ``value`` (a number, or ``auto``)."""
    if str(value).strip().lower() != "auto":
        return int(value), "as asked"
    if gpu_workers(device, cluster_kind, gpus):
        return AUTO_GPU_BATCH, (
            f"auto, GPU workers: up to {AUTO_GPU_BATCH} pairs, each worker fits its batches to "
            f"its free memory and cuts them where padding would pass {MAX_PADDING:.0%}")
    return AUTO_CPU_BATCH, "auto, CPU workers: each pair is optimised alone; 4 per batch"


def padding_share(lengths: Sequence[int]) -> float:
    """Share of a padded batch's work spent on padding."""
    return 1.0 - sum(lengths) / (len(lengths) * max(lengths)) if lengths else 0.0


def split_by_padding(lengths: Sequence[int], cap: int,
                     max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Cut positions ``0..n-1`` (in order) into runs of at most ``cap`` whose padding share
    stays within ``max_padding`` (a single item is never cut)."""
    groups: list[list[int]] = []
    for i, n in enumerate(lengths):
        group = groups[-1] if groups else None
        if group is not None and len(group) < cap and \
                padding_share([lengths[j] for j in group] + [n]) <= max_padding:
            group.append(i)
        else:
            groups.append([i])
    return groups
