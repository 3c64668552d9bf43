"""Spectrogram cache: every example's log-magnitude computed once, stored as ``.npy`` memmaps.

A cache lives in ``<cache_dir>/<key>/`` where the key hashes the examples (paths, sizes,
modification times), the STFT settings and the clip length. It holds ``specs.npy``
(float16, ``(N, bins, frames)``; shorter clips zero-padded, i.e. silent, longer ones cut to
the first ``frames``), ``lengths.npy`` (valid frames per clip) and ``meta.json``, written
last and renamed into place, so a half-built cache is never used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hpc_nst.audio.io import AudioError, load_audio
from hpc_nst.audio.spectrogram import log_magnitude, num_frames, num_samples
from hpc_nst.config import STFTConfig
from hpc_nst.train.sources import MAX_REPORTED, Example, ManifestError

CACHE_VERSION = 1
CLIP_FRAMES = 257
"""Stored frames per example: 2.56 s at a 10 ms hop."""


@dataclass
class SpecCache:
    """An opened cache: ``specs[i]`` is example ``i``'s ``(bins, frames)`` float16 image."""

    path: Path
    specs: np.ndarray
    lengths: np.ndarray


def cache_key(examples: list[Example], stft: STFTConfig, frames: int) -> str:
    """Key of the cache for these examples, STFT settings and clip length."""
    h = hashlib.sha256(f"v{CACHE_VERSION} {dataclasses.asdict(stft)} {frames}\n".encode())
    for ex in examples:
        st = ex.path.stat()
        h.update(f"{ex.path.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _open(path: Path) -> SpecCache:
    return SpecCache(
        path, np.load(path / "specs.npy", mmap_mode="r"), np.load(path / "lengths.npy")
    )


def build_cache(
    examples: list[Example],
    cache_dir: Path,
    stft: STFTConfig,
    frames: int = CLIP_FRAMES,
    progress: Callable[[str], None] | None = None,
) -> SpecCache:
    """Open the cache for ``examples``, computing it first if absent.

    Every unreadable file is collected and reported in one :class:`ManifestError` naming the
    manifest row and the file.
    """
    key = cache_key(examples, stft, frames)
    final = cache_dir / key
    if (final / "meta.json").is_file():
        if progress:
            progress(f"spectrogram cache: {final} (reused)")
        return _open(final)
    cache_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small per-clip STFTs: threads only wait on each other
    try:
        _compute(examples, cache_dir, key, stft, frames, progress)
    finally:
        torch.set_num_threads(threads)
    if progress:
        progress(f"spectrogram cache: {final}")
    return _open(final)


def _compute(
    examples: list[Example],
    cache_dir: Path,
    key: str,
    stft: STFTConfig,
    frames: int,
    progress: Callable[[str], None] | None,
) -> None:
    final = cache_dir / key
    tmp = cache_dir / f".{key}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        specs = np.lib.format.open_memmap(
            tmp / "specs.npy", mode="w+", dtype=np.float16,
            shape=(len(examples), stft.n_bins, frames),
        )
        lengths = np.zeros(len(examples), dtype=np.int32)
        n_samples = num_samples(frames, stft)
        errors: list[str] = []
        t0, last = time.perf_counter(), 0.0
        for i, ex in enumerate(examples):
            try:
                audio = load_audio(ex.path, stft.sample_rate, min_samples=stft.win_length)
            except AudioError as exc:
                errors.append(f"{ex.where}: {exc}")
                continue
            audio = audio[:n_samples]
            spec = log_magnitude(torch.from_numpy(audio), stft).numpy()
            lengths[i] = min(num_frames(audio.shape[0], stft), frames)
            specs[i, :, : lengths[i]] = spec[:, : lengths[i]]
            now = time.perf_counter()
            if progress and (now - last > 10 or i + 1 == len(examples)):
                progress(f"spectrograms {i + 1}/{len(examples)} ({now - t0:.0f} s)")
                last = now
        if errors:
            more = len(errors) - MAX_REPORTED
            tail = f"\n  ... and {more} more" if more > 0 else ""
            raise ManifestError(
                f"{len(errors)} unreadable audio file(s):\n  "
                + "\n  ".join(errors[:MAX_REPORTED]) + tail
            )
        specs.flush()
        del specs
        np.save(tmp / "lengths.npy", lengths)
        meta = {"version": CACHE_VERSION, "n": len(examples), "frames": frames,
                "stft": dataclasses.asdict(stft)}
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            tmp.rename(final)
        except OSError:  # another process finished the same cache first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
