"""The cost model behind ``hpc-nst run --dry-run``, and ``hpc-nst calibrate`` that feeds it.

A batch of B pairs whose longest content has F frames costs, on one device,

    (features_s(B) + fixed_s(B) + iterations * ms_per_iteration(B) / 1000
        + griffin_lim_iterations * gl_ms_per_iteration(B) / 1000) * F/F0

with the per-batch figures measured at F0 frames for each batch size B (the optimisation and
Griffin-Lim are linear in the frames and the iterations; a batch is padded to its longest
pair; ``fixed_s`` is the time that does not scale with the iterations: all of it for a
per-pair method such as ``sampler`` or ``eq``, which has no iterations). The figures come
from a calibration file (``hpc-nst calibrate`` measures them with short runs of the job on
synthetic pairs, or on real pairs of the user's manifest with ``--manifest``: the per-pair
methods' time depends on the notes, not only the length) or from the timings of an earlier
store of the same job. Entries are keyed by device name and by the job's *cost key*: its
digest with the seeds and iteration counts zeroed, so one calibration serves any iteration
count.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpc_nst.config import JobConfig, effective_parameters
from hpc_nst.errors import UsageError

DEFAULT_FILE = Path(os.environ.get("HPC_NST_CALIBRATION",
                                   Path.home() / ".cache" / "hpc_nst" / "calibration.json"))


def cost_key(job: JobConfig | dict[str, Any]) -> str:
    """The job's digest without the seeds and the iteration counts (which the model scales);
    from a config or a store's ``job`` attribute."""
    import copy
    import hashlib

    data = copy.deepcopy(job.record() if isinstance(job, JobConfig) else dict(job))
    data = effective_parameters(data)
    for section, key in (("optim", "seed"), ("optim", "iterations"),
                         ("optim", "record_every"), ("griffin_lim", "iterations")):
        data.get(section, {}).pop(key, None)
    text = json.dumps(data, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BatchCost:
    """Measured cost of one batch of ``batch`` pairs of ``frames`` frames."""

    batch: int
    frames: int
    features_s: float
    ms_per_iteration: float
    gl_ms_per_iteration: float
    fixed_s: float = 0.0  # per batch, not scaled by the iterations (a per-pair method's all)
    warmup_s: float = 0.0  # once per worker process: its first pair's extra time (model load)


@dataclass(frozen=True)
class CostModel:
    device: str  # device name, e.g. "NVIDIA H100 80GB HBM3" or "CPU: AMD EPYC"
    source: str  # where the figures come from
    batches: dict[int, BatchCost]

    @property
    def warmup_s(self) -> float:
        """What each worker process spends once, on its first pair, beyond the pair."""
        return max((c.warmup_s for c in self.batches.values()), default=0.0)

    def batch_seconds(self, cfg: JobConfig, batch: int, frames: int) -> float:
        """Device seconds of one batch of ``batch`` pairs, the longest ``frames`` long."""
        sizes = sorted(self.batches)
        b = min(sizes, key=lambda s: (abs(math.log(s / batch)), s))
        c = self.batches[b]
        per_pair = batch / b  # another batch size: scale linearly from the nearest measured
        scale = frames / c.frames * per_pair
        return scale * (c.features_s + c.fixed_s + cfg.optim.iterations * c.ms_per_iteration / 1000
                        + cfg.griffin_lim.iterations * c.gl_ms_per_iteration / 1000)


def calibration_audio(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A synthetic monophonic melody (harmonic notes, decaying, 0.2-0.6 s each) of ``n``
    samples: the methods that analyse notes (``sampler``, ``harmonic``, ``layered``) need
    pitched material; for the others only the length matters."""
    t_all = np.arange(n) / sr
    out = np.zeros(n, np.float32)
    start = 0
    while start < n:
        length = min(int(rng.uniform(0.2, 0.6) * sr), n - start)
        f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12)
        t = t_all[:length]
        note = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8) if k * f0 < sr / 2)
        out[start: start + length] = 0.2 * note * np.exp(-3.0 * t)
        start += length
    return out


def measure(cfg: JobConfig, device: str, batch_sizes: list[int], seconds: float = 2.56,
            iterations: int = 20,
            pairs: list[tuple[np.ndarray, np.ndarray]] | None = None) -> dict[int, BatchCost]:
    """Run the job for each batch size (short runs) and time it: on synthetic pairs of
    ``seconds``, or on ``pairs`` (content, style audio at the job's rate: real pairs of the
    user's manifest, :func:`manifest_pairs`), every one of them once per batch size, the
    figures scaled to their median length (the model is linear in the frames)."""
    from hpc_nst.audio.spectrogram import num_frames

    rng = np.random.default_rng(0)
    sr = cfg.stft.sample_rate
    short = dataclasses.replace(
        cfg, optim=dataclasses.replace(cfg.optim, iterations=iterations),
        griffin_lim=dataclasses.replace(cfg.griffin_lim, iterations=max(
            2, min(cfg.griffin_lim.iterations, iterations))))
    out: dict[int, BatchCost] = {}
    warmup = -1.0
    for b in batch_sizes:
        if pairs is None:
            audio = [calibration_audio(rng, int(seconds * sr), sr) for _ in range(2 * b)]
            batches = [(audio[:b], audio[b:])]
        else:  # every batch full: the pairs taken in turn, again from the first if need be
            n = max(len(pairs), b)
            n = -(-n // b) * b
            cycle = [pairs[i % len(pairs)] for i in range(n)]
            batches = [([c for c, _ in cycle[i:i + b]], [s for _, s in cycle[i:i + b]])
                       for i in range(0, n, b)]
        times = [_time_call(short, batches[0][0][:1], batches[0][1][:1], device)
                 for _ in range(2 if warmup < 0 else 1)]  # a fresh worker's first pair, again
        if warmup < 0:
            warmup = max(0.0, times[0] - times[1])
        timed = [_time_batch(short, contents, styles, device, b) for contents, styles in batches]
        f0 = int(np.median([num_frames(len(c), cfg.stft) for c, _ in pairs])) if pairs else \
            timed[0].frames
        scaled = [[v * f0 / t.frames for v in (t.features_s, t.ms_per_iteration,
                                               t.gl_ms_per_iteration, t.fixed_s)]
                  for t in timed]
        out[b] = BatchCost(b, f0, *(float(np.mean(col)) for col in zip(*scaled)),
                           warmup_s=warmup)
    return out


def _time_call(cfg: JobConfig, contents: list[np.ndarray], styles: list[np.ndarray],
               device: str) -> float:
    from hpc_nst.engine.methods import run_method

    start = time.perf_counter()
    run_method(contents, styles, cfg, seeds=list(range(len(contents))), device=device)
    return time.perf_counter() - start


def _time_batch(short: JobConfig, contents: list[np.ndarray], styles: list[np.ndarray],
                device: str, b: int) -> BatchCost:
    """One full batch's cost, at its longest content's frames (the model scales a batch by
    its longest pair). Each result carries its group's timings (a GPU: the whole batch; a
    CPU: the pair alone), so the batch's are their sum over the results, each divided by its
    group's size."""
    from hpc_nst.audio.spectrogram import num_frames
    from hpc_nst.engine.methods import run_method

    results = run_method(contents, styles, short, seeds=list(range(len(contents))),
                         device=device)
    frames = max(num_frames(len(c), short.stft) for c in contents)
    if "ms_per_iteration" not in results[0].timings:  # a per-pair method: each timed alone
        fixed = sum(r.timings.get("total_s", r.timings.get("optimise_s", 0.0))
                    for r in results)
        return BatchCost(b, frames, 0.0, 0.0, 0.0, fixed)
    t: dict[str, float] = {}
    for r in results:
        for k, v in r.timings.items():
            t[k] = t.get(k, 0.0) + v / max(r.group_pairs, 1)
    gl = t.get("griffin_lim_s", 0.0) / short.griffin_lim.iterations * 1000
    return BatchCost(b, frames, t.get("features_s", 0.0), t.get("ms_per_iteration", 0.0), gl)


def manifest_pairs(path: Path, cfg: JobConfig, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The audio of ``count`` valid pairs of the manifest ``path`` (spread evenly over it),
    loaded as a worker loads them; a pair whose audio cannot be used is passed over."""
    from hpc_nst.audio.io import AudioError, load_audio
    from hpc_nst.batch.manifest import read_manifest

    valid = read_manifest(path, cfg).valid  # (timed with the job's parameters, not a row's)
    if not valid:
        raise UsageError(f"--manifest {path}: no valid pair to time (hpc-nst run --dry-run "
                         "lists the manifest's problems)")
    order = np.unique(np.linspace(0, len(valid) - 1, min(count, len(valid))).round().astype(int))
    sr, least = cfg.stft.sample_rate, cfg.stft.win_length
    out: list[tuple[np.ndarray, np.ndarray]] = []
    chosen = set(order.tolist())
    for i in [*order, *(i for i in range(len(valid)) if i not in chosen)]:
        if len(out) == len(order):
            break
        try:
            out.append((load_audio(valid[i].content_path, sr, min_samples=least),
                        load_audio(valid[i].style_path, sr, min_samples=least)))
        except AudioError:
            continue
    if not out:
        raise UsageError(f"--manifest {path}: no pair's audio could be read to time")
    return out


def save(path: Path, device: str, cfg: JobConfig, costs: dict[int, BatchCost]) -> None:
    """Add (or replace) the entries of ``device`` and this job in the calibration file."""
    data = load_file(path)
    entry = data.setdefault(device, {}).setdefault(cost_key(cfg), {})
    entry.update({str(b): dataclasses.asdict(c) | {"measured": time.strftime("%Y-%m-%d")}
                  for b, c in costs.items()})
    from hpc_nst.fsutil import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True))


def load_file(path: Path, must_exist: bool = False) -> dict[str, Any]:
    if not path.is_file():
        if must_exist:
            raise UsageError(f"--calibration {path}: no such file; give a file written by "
                             "hpc-nst calibrate (or an earlier store of this job, *.zarr)")
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise UsageError(f"{path}: not a calibration file ({exc}); delete it and rerun "
                         "hpc-nst calibrate") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a calibration file (JSON {type(data).__name__}, not an "
                         "object); delete it and rerun hpc-nst calibrate")
    return data


def from_file(path: Path, cfg: JobConfig, device: str | None = None,
              must_exist: bool = False) -> CostModel | None:
    """The model for this job (and ``device``: a name, or ``cuda``/``cpu`` for any such);
    ``must_exist``: a file the user named (a missing one is an error, not "no model")."""
    data = load_file(path, must_exist)
    key = cost_key(cfg)
    for name in sorted(data):
        if key not in data[name]:
            continue
        if device and device not in ("auto", name) and not (
                device.startswith("cuda") != name.startswith("CPU")):
            continue
        known = {f.name for f in dataclasses.fields(BatchCost)}  # (a later release's keys:
        batches = {int(b): BatchCost(**{k: v for k, v in c.items() if k in known})  # left)
                   for b, c in data[name][key].items()}
        old = not all("warmup_s" in c for c in data[name][key].values())
        return CostModel(name, f"{path} ({name}" + ("; measured before calibrate timed each "
                         "worker's first-pair warm-up: calibrate again to include it)"
                         if old else ")"), batches)
    return None


def from_store(path: Path, cfg: JobConfig, device: str | None = None) -> CostModel | None:
    """The model from the timings of the done pairs of an earlier store of this job; with
    ``device`` (``cuda``/``cpu``...), for a job that optimises, only of those that ran on
    that kind of device (None where there are none: CPU timings are no estimate of
    GPU-hours). A per-pair method runs on the CPU wherever it runs."""
    from hpc_nst.batch.reader import pairs_table, store_info

    info = store_info(path)
    if cost_key(info.job) != cost_key(cfg):
        raise UsageError(f"--calibration {path}: that store ran another job (other method, "
                         "model, weights or STFT); calibrate this job with hpc-nst calibrate")
    table = pairs_table(info)
    done = table[table.status == "done"]
    from hpc_nst.engine.methods.base import optimises

    if device and device != "auto" and optimises(cfg):  # (the others run on a CPU anywhere)
        on_gpu = done.device.astype(str).str.startswith("cuda")
        done = done[on_gpu if device.startswith("cuda") else ~on_gpu]
    if done.empty:
        return None
    from hpc_nst.batch import store as st

    frames = st.open_root(path)["frames"][:, 0][done.index.to_numpy()]
    gl_iters = max(int(info.job.get("griffin_lim", {}).get("iterations", 1)), 1)

    def median(grp: Any, column: str) -> float:
        values = grp[column].to_numpy(float) if column in grp else np.array([])
        values = values[np.isfinite(values)]
        return float(np.median(values)) if len(values) else 0.0

    batches = {}
    for b, grp in done.assign(content_frames=frames).groupby("batch_pairs"):
        f = float(np.median(grp.content_frames))
        per_iteration = median(grp, "ms_per_iteration")
        if per_iteration > 0:
            batches[int(b)] = BatchCost(int(b), int(f), median(grp, "features_s"),
                                        per_iteration,
                                        median(grp, "griffin_lim_s") / gl_iters * 1000)
        else:  # a per-pair method: no iterations; each pair's compute is all fixed
            batches[int(b)] = BatchCost(int(b), int(f), 0.0, 0.0, 0.0,
                                        median(grp, "optimise_s") * int(b))
    if not any(c.fixed_s or c.ms_per_iteration for c in batches.values()):
        return None
    name = str(done.device_name.iloc[0]) if "device_name" in done else str(done.device.iloc[0])
    return CostModel(name, f"timings of {len(done)} done pair(s) in {path} ({name})", batches)
