"""Evaluation of a classifier on cached spectrograms: top-k accuracy and confused class pairs."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hpc_nst.models.alexnet import AudioAlexNet
from hpc_nst.train.cache import SpecCache


@torch.no_grad()
def predict_logits(
    model: AudioAlexNet,
    cache: SpecCache,
    indices: np.ndarray,
    device: torch.device,
    batch_size: int = 64,
) -> np.ndarray:
    """Logits ``(len(indices), n_classes)`` of whole cached clips (their valid frames)."""
    was_training = model.training
    model.eval()
    out = []
    for b in range(0, len(indices), batch_size):
        idx = np.sort(indices[b : b + batch_size])
        order = np.argsort(np.argsort(indices[b : b + batch_size]))
        x = torch.from_numpy(np.asarray(cache.specs[idx], dtype=np.float32))[:, None]
        lengths = torch.from_numpy(cache.lengths[idx].astype(np.int64))
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        logits = model(x, lengths.to(device)).float().cpu().numpy()
        out.append(logits[order])
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, model.n_classes), np.float32)


def metrics(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Cross-entropy loss, top-1 and top-5 accuracy (fractions)."""
    if len(targets) == 0:
        return {"loss": float("nan"), "top1": float("nan"), "top5": float("nan")}
    lt = torch.from_numpy(logits)
    tt = torch.from_numpy(targets.astype(np.int64))
    k = min(5, logits.shape[1])
    topk = lt.topk(k, dim=1).indices
    return {
        "loss": float(F.cross_entropy(lt, tt)),
        "top1": float((topk[:, 0] == tt).float().mean()),
        "top5": float((topk == tt[:, None]).any(dim=1).float().mean()),
    }


def confusion(logits: np.ndarray, targets: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion counts ``[true, predicted]``."""
    mat = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(mat, (targets, logits.argmax(axis=1)), 1)
    return mat


def confused_pairs(
    mat: np.ndarray, classes: list[str], top: int = 10
) -> list[dict[str, object]]:
    """The class pairs most often mistaken for each other (both directions summed)."""
    sym = mat + mat.T
    np.fill_diagonal(sym, 0)
    i, j = np.triu_indices_from(sym, k=1)
    order = np.argsort(-sym[i, j], kind="stable")[:top]
    pairs = []
    for k in order:
        a, b = int(i[k]), int(j[k])
        if sym[a, b] == 0:
            break
        pairs.append({"a": classes[a], "b": classes[b],
                      "a_as_b": int(mat[a, b]), "b_as_a": int(mat[b, a]),
                      "n_a": int(mat[a].sum()), "n_b": int(mat[b].sum())})
    return pairs


def evaluate_checkpoint(
    model: AudioAlexNet,
    classes: list[str],
    labels: list[str],
    splits: list[str],
    cache: SpecCache,
    device: torch.device,
    split: str = "test",
) -> dict[str, object]:
    """Top-1/top-5, loss, confused pairs and per-class top-1 of ``model`` on one split.

    ``classes`` are the model's class names (checkpoint metadata); every label of the split
    must be one of them.
    """
    idx = np.flatnonzero(np.array(splits) == split)
    if len(idx) == 0:
        raise ValueError(f"no examples in the {split!r} split")
    unknown = sorted({labels[i] for i in idx} - set(classes))
    if unknown:
        raise ValueError(f"labels the checkpoint does not know: {', '.join(unknown[:5])}")
    targets = np.array([classes.index(labels[i]) for i in idx], dtype=np.int64)
    logits = predict_logits(model.to(device), cache, idx, device)
    result: dict[str, object] = {"split": split, "n": int(len(idx)), **metrics(logits, targets)}
    mat = confusion(logits, targets, len(classes))
    result["confused_pairs"] = confused_pairs(mat, classes)
    result["per_class_top1"] = {c: float(mat[k, k] / mat[k].sum())
                                for k, c in enumerate(classes) if mat[k].sum()}
    return result
