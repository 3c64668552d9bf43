"""Training the instrument classifier (:class:`AudioAlexNet`) on cached spectrograms.

Adam(W) with cross-entropy (light label smoothing), linear warm-up then cosine decay per step.
Each step sees random crops of ``crop_frames`` frames (placed where the clip has energy) at a
random gain. Every epoch is validated on whole clips of the ``val`` split; the best epoch (val
top-1) is written to the output checkpoint, and the full state (model, optimizer, epoch, RNG
states, history) to ``<output>.resume.pt`` so an interrupted run continues exactly. At the end
the best model is evaluated on the held-out ``test`` split and the checkpoint's metadata
receives the held-out accuracy and the most confused class pairs; a JSON report is written to
``<output stem>.report.json``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hpc_nst import __version__
from hpc_nst.config import STFTConfig
from hpc_nst.errors import TrainError  # noqa: F401 (re-exported)
from hpc_nst.fsutil import atomic_write
from hpc_nst.models.alexnet import AudioAlexNet
from hpc_nst.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hpc_nst.train.cache import SpecCache
from hpc_nst.train.evaluate import evaluate_checkpoint, metrics, predict_logits

STATE_FORMAT = "hpc_nst.train-state/1"



@dataclass
class TrainConfig:
    """Hyper-parameters of one training run."""

    epochs: int = 10
    width: int = 16
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    crop_frames: int = 128
    gain_db: tuple[float, float] = (-20.0, 6.0)
    label_smoothing: float = 0.05
    warmup_steps: int = 150
    seed: int = 0


def resume_path(checkpoint: Path) -> Path:
    """Where the resumable state of a run writing ``checkpoint`` lives."""
    return checkpoint.with_name(checkpoint.name + ".resume.pt")


def report_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.stem + ".report.json")


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(1, min(cfg.warmup_steps, total // 10)))
    return cfg.lr * warm * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(1, total)))


def _crop_start(spec: np.ndarray, crop: int, rng: np.random.Generator) -> int:
    """A random crop start among those keeping >= 30 % of the clip's best crop energy."""
    energy = np.concatenate([[0.0], np.cumsum(spec.sum(axis=0, dtype=np.float64))])
    windows = energy[crop:] - energy[:-crop]
    ok = np.flatnonzero(windows >= 0.3 * windows.max())
    return int(rng.choice(ok)) if ok.size else 0


def make_batch(
    cache: SpecCache, idx: np.ndarray, cfg: TrainConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented crops ``(B, 1, bins, crop)`` and their valid lengths."""
    bins = cache.specs.shape[1]
    x = np.zeros((len(idx), 1, bins, cfg.crop_frames), dtype=np.float32)
    lengths = np.zeros(len(idx), dtype=np.int64)
    for k, i in enumerate(idx):
        n = int(cache.lengths[i])
        spec = np.asarray(cache.specs[i, :, :n], dtype=np.float32)
        if n > cfg.crop_frames:
            s = _crop_start(spec, cfg.crop_frames, rng)
            spec = spec[:, s : s + cfg.crop_frames]
        x[k, 0, :, : spec.shape[1]] = spec
        lengths[k] = spec.shape[1]
    gain = 10.0 ** (rng.uniform(*cfg.gain_db, size=(len(idx), 1, 1, 1)) / 20.0)
    xt = torch.log1p(torch.from_numpy(gain.astype(np.float32)) * torch.expm1(torch.from_numpy(x)))
    return xt, torch.from_numpy(lengths)


def _input_stats(cache: SpecCache, idx: np.ndarray, seed: int) -> tuple[float, float]:
    """Mean and std of the log-magnitude over valid frames of up to 512 training clips."""
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(idx, size=min(512, len(idx)), replace=False))
    total, total_sq, count = 0.0, 0.0, 0
    for i in sample:
        spec = np.asarray(cache.specs[i, :, : cache.lengths[i]], dtype=np.float64)
        total, total_sq, count = total + spec.sum(), total_sq + (spec**2).sum(), count + spec.size
    mean = total / max(count, 1)
    std = math.sqrt(max(total_sq / max(count, 1) - mean**2, 1e-12))
    return mean, std


def init_weights(model: AudioAlexNet) -> None:
    """He-normal convolutions and ``fc1``, a near-zero ``fc2``, zero biases.

    PyTorch's default init shrinks the signal at every layer of this BatchNorm-free network,
    and training then sits on a plateau at chance for hundreds of steps.
    """
    for layer in [*model.convs.values(), model.fc1]:
        torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        torch.nn.init.zeros_(layer.bias)
    torch.nn.init.normal_(model.fc2.weight, std=0.01)
    torch.nn.init.zeros_(model.fc2.bias)


def _atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_state(path: Path) -> dict[str, Any]:
    """The resume state written by :func:`train` (given it or the run's checkpoint)."""
    if not path.name.endswith(".resume.pt"):  # the run's checkpoint (there or not yet)
        path = resume_path(path)
    if not path.is_file():
        raise TrainError(f"{path}: no resume state found (it is written after each epoch)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise TrainError(f"{path}: unreadable resume state ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainError(f"{path}: not an hpc_nst training state")
    return state


def _start_weights(
    path: Path, classes: list[str], width: int, stft: STFTConfig
) -> dict[str, torch.Tensor]:
    """Weights of a checkpoint to fine-tune, checked against the data's classes and width."""
    try:
        net, meta = load_checkpoint(path, stft)
    except CheckpointError as exc:
        raise TrainError(str(exc)) from None
    known = list(meta.get("classes") or [])
    if sorted(known) != sorted(classes):
        raise TrainError(f"{path}: its classes differ from the training data's")
    if net.width != width:
        raise TrainError(f"{path}: width {net.width}, but training width {width}")
    weights = net.state_dict()
    order = torch.tensor([known.index(c) for c in classes])  # the data's class order
    weights["fc2.weight"], weights["fc2.bias"] = weights["fc2.weight"][order], weights[
        "fc2.bias"][order]
    return weights


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def train(
    labels: list[str],
    splits: list[str],
    cache: SpecCache,
    output: Path,
    cfg: TrainConfig,
    stft: STFTConfig,
    data_hash: str,
    device: torch.device,
    resume: Path | None = None,
    progress: Callable[[str], None] | None = None,
    stop_after: int | None = None,
    extra_meta: dict[str, Any] | None = None,
    init_from: Path | None = None,
) -> dict[str, Any]:
    """Train (or resume) and return the final checkpoint metadata.

    ``labels``/``splits`` are per cached example. ``stop_after`` ends this call after that
    many epochs (as an interruption would), leaving a resumable state. ``init_from`` starts
    from a checkpoint's weights (fine-tuning: same classes and width, fresh optimizer and
    schedule) instead of a random initialisation.
    """
    say = progress or (lambda msg: None)
    classes = list(dict.fromkeys(labels))
    targets = np.array([classes.index(lab) for lab in labels], dtype=np.int64)
    split_arr = np.array(splits)
    train_idx = np.flatnonzero(split_arr == "train")
    val_idx = np.flatnonzero(split_arr == "val")
    test_idx = np.flatnonzero(split_arr == "test")
    if len(val_idx) == 0:
        val_idx = test_idx
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise TrainError(
            f"need training and held-out examples; got {len(train_idx)} train, "
            f"{len(np.flatnonzero(split_arr == 'val'))} val, {len(test_idx)} test"
        )
    if len(classes) < 2:
        raise TrainError(f"need at least two classes, got {classes}")
    state = load_state(resume) if resume is not None else None
    if state is not None:
        if state["data_hash"] != data_hash or state["classes"] != classes:
            raise TrainError(f"{resume}: resume state belongs to different training data")
        epochs = cfg.epochs
        cfg = TrainConfig(**{**state["config"], "gain_db": tuple(state["config"]["gain_db"])})
        cfg.epochs = epochs
    if state is None:
        torch.manual_seed(cfg.seed)
    model = AudioAlexNet(len(classes), cfg.width, stft.n_bins)
    if state is None and init_from is not None:
        model.load_state_dict(_start_weights(init_from, classes, cfg.width, stft))
        say(f"starting from the weights of {init_from}")
    elif state is None:
        init_weights(model)
        mean, std = _input_stats(cache, train_idx, cfg.seed)
        model.input_mean.fill_(mean)
        model.input_std.fill_(std)
    else:
        model.load_state_dict(state["model"])
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"top1": -1.0, "epoch": 0}
    best_model = _cpu_state(model)
    start_epoch, train_seconds = 0, 0.0
    if state is not None:
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng_numpy"]
        torch.set_rng_state(state["rng_torch"])
        history, best, best_model = state["history"], state["best"], state["best_model"]
        start_epoch, train_seconds = state["epoch"], state["train_seconds"]
        say(f"resuming after epoch {start_epoch} (best val top-1 {best['top1']:.1%})")
    steps_per_epoch = math.ceil(len(train_idx) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    say(f"{len(classes)} classes; {len(train_idx)} train, {len(val_idx)} val, "
        f"{len(test_idx)} test clips; width {cfg.width}; {cfg.epochs} epochs of "
        f"{steps_per_epoch} steps on {device}")

    def meta(extra: dict[str, Any]) -> dict[str, Any]:
        return {"classes": classes, "data_hash": data_hash, "width": cfg.width,
                "train_config": {**dataclasses.asdict(cfg), "gain_db": list(cfg.gain_db)},
                "n_train": len(train_idx), "n_val": len(val_idx), "n_test": len(test_idx),
                "best_epoch": best["epoch"], "val_top1": best["top1"],
                "val_top5": best.get("top5"), "train_seconds": round(train_seconds, 1),
                "device": str(device), "torch_version": str(torch.__version__),
                **(extra_meta or {}), **extra}

    def save_model(weights: dict[str, torch.Tensor], extra: dict[str, Any]) -> None:
        net = AudioAlexNet(len(classes), cfg.width, stft.n_bins)
        net.load_state_dict(weights)
        save_checkpoint(net, output, stft, meta(extra))

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        if stop_after is not None and epoch > start_epoch + stop_after:
            return meta({})
        t0 = time.perf_counter()
        model.train()
        perm = rng.permutation(train_idx)
        sum_loss, correct, seen, last_log = 0.0, 0, 0, t0
        for b in range(steps_per_epoch):
            step = (epoch - 1) * steps_per_epoch + b
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, total_steps, cfg)
            idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
            x, lengths = make_batch(cache, idx, cfg, rng)
            y = torch.from_numpy(targets[idx]).to(device)
            x = x.to(device).contiguous(memory_format=torch.channels_last)
            logits = model(x, lengths.to(device))
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sum_loss += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
            if time.perf_counter() - last_log > 60:
                last_log = time.perf_counter()
                say(f"  epoch {epoch} step {b + 1}/{steps_per_epoch}  "
                    f"loss {sum_loss / seen:.4f}  acc {correct / seen:.1%}")
        if not math.isfinite(sum_loss):  # NaN weights "predict" class 0: never a best epoch
            raise TrainError(
                f"the training diverged in epoch {epoch} (loss {sum_loss / max(seen, 1)}); "
                f"start again with a lower --lr (now {cfg.lr:g}; a resumed run keeps its "
                "own, so with --overwrite, not --resume); "
                + (f"the output holds the best epoch so far ({best['epoch']})"
                   if best["epoch"] else "no epoch was saved"))
        val = metrics(predict_logits(model, cache, val_idx, device), targets[val_idx])
        seconds = time.perf_counter() - t0
        train_seconds += seconds
        row = {"epoch": epoch, "train_loss": sum_loss / seen, "train_acc": correct / seen,
               "val_loss": val["loss"], "val_top1": val["top1"], "val_top5": val["top5"],
               "seconds": round(seconds, 1)}
        history.append(row)
        improved = val["top1"] > best["top1"]
        if improved:
            best = {"top1": val["top1"], "top5": val["top5"], "epoch": epoch}
            best_model = _cpu_state(model)
            save_model(best_model, {"epochs_trained": epoch})
        say(f"epoch {epoch}/{cfg.epochs}  train loss {row['train_loss']:.4f} "
            f"acc {row['train_acc']:.1%}  val loss {val['loss']:.4f} top-1 {val['top1']:.1%} "
            f"top-5 {val['top5']:.1%}  {seconds:.0f} s{'  * best' if improved else ''}")
        _atomic_save(
            {"format": STATE_FORMAT, "epoch": epoch, "model": _cpu_state(model),
             "best_model": best_model, "optimizer": opt.state_dict(),
             "rng_numpy": rng.bit_generator.state, "rng_torch": torch.get_rng_state(),
             "history": history, "best": best, "config": dataclasses.asdict(cfg),
             "data_hash": data_hash, "classes": classes, "train_seconds": train_seconds},
            resume_path(output),
        )

    final = copy.deepcopy(model)
    final.load_state_dict(best_model)
    held_name = "test" if len(test_idx) else "val"
    held = evaluate_checkpoint(final, classes, labels, splits, cache, device, held_name)
    extra = {"epochs_trained": cfg.epochs, "heldout_split": held_name,
             "heldout_top1": held["top1"], "heldout_top5": held["top5"],
             "heldout_loss": held["loss"], "confused_pairs": held["confused_pairs"],
             "history": history}
    save_model(best_model, extra)
    report = {**meta(extra), "per_class_top1": held["per_class_top1"],
              "package_version": __version__}
    report_path(output).write_text(json.dumps(report, indent=1))
    say(f"held-out ({held_name}, {held['n']} clips): top-1 {held['top1']:.1%}  "
        f"top-5 {held['top5']:.1%}  (best epoch {best['epoch']}); wrote {output}")
    return meta(extra)


def print_progress(msg: str) -> None:
    """Progress to stderr with a timestamp."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
