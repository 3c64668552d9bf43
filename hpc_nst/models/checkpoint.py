"""Saving, loading and resolving feature-network checkpoints.

A checkpoint is a ``torch.save`` dict: ``state_dict``, ``arch`` (class, width, n_classes,
n_bins), ``stft`` (the STFT settings it was trained on) and ``meta`` (class names, data hash,
accuracy, package version, ...). Loading checks architecture and STFT settings against the job
and fails with :class:`CheckpointError` naming the mismatch.
"""

from __future__ import annotations

import dataclasses
import functools
import pickle
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

from hpc_nst import __version__
from hpc_nst.config import JobConfig, STFTConfig
from hpc_nst.errors import CheckpointError  # noqa: F401 (re-exported)
from hpc_nst.fsutil import atomic_write
from hpc_nst.models.alexnet import AudioAlexNet, random_model

#: The trained instrument classifier shipped inside the package.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "assets" / "classifier.pt"



def save_checkpoint(
    model: AudioAlexNet, path: str | Path, stft: STFTConfig, meta: dict[str, Any]
) -> None:
    """Write ``model`` with its architecture, STFT settings and metadata (atomically)."""
    payload = {
        "format": "hpc_nst.checkpoint/1",
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "arch": {
            "class": type(model).__name__,
            "width": model.width,
            "n_classes": model.n_classes,
            "n_bins": model.n_bins,
        },
        "stft": dataclasses.asdict(stft),
        "meta": {"package_version": __version__, **meta},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, validated for format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    import zipfile

    if not zipfile.is_zipfile(path):  # (every checkpoint hpc-nst writes is a torch zip)
        raise CheckpointError(f"{path}: not a checkpoint: not a PyTorch zip file, or one cut "
                              "short (no zip directory at its end); give a file written by "
                              "hpc-nst train, or copy it again")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"{path}: not an hpc_nst checkpoint: it holds Python objects "
                              "beyond tensors, which are not loaded, for safety (torch.load "
                              "weights_only)") from None
    except Exception as exc:  # noqa: BLE001 - a damaged archive member, ...
        raise CheckpointError(f"{path}: damaged checkpoint ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); copy it again or retrain") from None
    if not isinstance(payload, dict) or payload.get("format") != "hpc_nst.checkpoint/1":
        raise CheckpointError(f"{path}: not an hpc_nst checkpoint (missing format tag)")
    return payload


def load_checkpoint(
    path: str | Path, stft: STFTConfig | None = None
) -> tuple[AudioAlexNet, dict[str, Any]]:
    """Load a checkpoint into a fresh :class:`AudioAlexNet`; returns ``(model, meta)``.

    With ``stft``, the checkpoint's STFT settings must equal it.
    """
    payload = read_checkpoint(path)
    arch = payload["arch"]
    if arch.get("class") != AudioAlexNet.__name__:
        raise CheckpointError(f"{path}: architecture {arch.get('class')!r} is not AudioAlexNet")
    if stft is not None:
        saved = payload["stft"]
        wanted = dataclasses.asdict(stft)
        diffs = [f"{k}={saved.get(k)} (job: {v})" for k, v in wanted.items() if saved.get(k) != v]
        if diffs:
            raise CheckpointError(
                f"{path}: trained with different STFT settings: {', '.join(diffs)}"
            )
    model = AudioAlexNet(arch["n_classes"], arch["width"], arch["n_bins"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the architecture ({exc})") from None
    return model.eval(), payload["meta"]


_RESOLVE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=8)
def _cached(name: str, width: int, seed: int, stft: STFTConfig) -> AudioAlexNet:
    if name == "random":
        return random_model(width=width, seed=seed, n_bins=stft.n_bins)
    if name in ("classifier", "default"):
        if not DEFAULT_CHECKPOINT.is_file():
            warnings.warn(
                "no trained classifier is shipped in this build; using model=random",
                stacklevel=3,
            )
            return random_model(width=width, seed=seed, n_bins=stft.n_bins)
        return load_checkpoint(DEFAULT_CHECKPOINT, stft)[0]
    return load_checkpoint(name, stft)[0]


def network_width(cfg: JobConfig) -> int:
    """The width of the network the job asks for, without building a random one (an absurd
    ``model.width`` must fail a memory check, not allocate): a checkpoint brings its own (the
    classifier: 32)."""
    return cfg.model.width if cfg.model.name == "random" else resolve_model(cfg).width


def resolve_model(cfg: JobConfig, device: torch.device | str = "cpu") -> AudioAlexNet:
    """The feature network a job asks for (``random``, ``classifier`` or a path), frozen, on device.

    Models are cached per process, so a worker loads each checkpoint once; tasks running at
    once on a worker share the model (read-only) and build it once.
    """
    with _RESOLVE_LOCK:
        model = _cached(cfg.model.name, cfg.model.width, cfg.model.seed, cfg.stft)
        for p in model.parameters():
            p.requires_grad_(False)
        return model.to(device, memory_format=torch.channels_last)
