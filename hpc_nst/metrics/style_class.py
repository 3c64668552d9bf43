"""Classifier-judged style: does an instrument classifier put the output in the style's class?

The classifier is an :class:`~hpc_nst.models.alexnet.AudioAlexNet` checkpoint with class names
(the shipped one by default); audio is classified with
:func:`hpc_nst.train.classify.classify_audio` (per 2.56 s window, length-weighted mean of the
softmax). For one output:

- ``style_top1``: 1.0 when the most probable class is the style class, else 0.0 (its mean over
  pairs is the fraction judged to be in the style's class);
- ``style_prob``: the probability of the style class;
- ``output_class``: the most probable class name.

The style class is the manifest's ``style_label`` when it names one of the classifier's classes
(case-insensitive; a GM program number 0-127 also works for GM-named classes); otherwise it is
inferred as the classifier's top-1 class of the style audio itself (see :func:`style_class`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hpc_nst.config import STFTConfig
from hpc_nst.models.alexnet import AudioAlexNet


@dataclass
class Classifier:
    """A classification model with its class names and STFT settings."""

    model: AudioAlexNet
    classes: list[str]
    stft: STFTConfig = STFTConfig()
    device: str = "cpu"

    def probabilities(self, audio: np.ndarray) -> np.ndarray:
        """Overall class probabilities of mono audio at ``stft.sample_rate``."""
        from hpc_nst.train.classify import classify_audio

        return classify_audio(self.model, audio, self.stft, self.device).overall

    def index(self, label: str) -> int | None:
        """The class index a manifest label names, or None."""
        return class_index(label, self.classes)


def load_classifier(path: str | Path | None = None, stft: STFTConfig | None = None) -> Classifier:
    """The checkpoint at ``path`` (default: the shipped classifier) with its class names.

    Raises :class:`~hpc_nst.models.checkpoint.CheckpointError` when it is missing or has no
    class names.
    """
    from hpc_nst.models.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint

    stft = stft or STFTConfig()
    path = Path(path) if path is not None else DEFAULT_CHECKPOINT
    model, meta = load_checkpoint(path, stft)
    classes = meta.get("classes")
    if not isinstance(classes, list) or len(classes) != model.n_classes:
        raise CheckpointError(f"{path}: checkpoint has no class names (not a trained classifier)")
    return Classifier(model, [str(c) for c in classes], stft)


def class_index(label: str, classes: list[str]) -> int | None:
    """Index of ``label`` in ``classes`` (case-insensitive), a GM program number, or None."""
    text = str(label).strip()
    if not text:
        return None
    lowered = [c.lower() for c in classes]
    if text.lower() in lowered:
        return lowered.index(text.lower())
    if text.isdigit():
        from hpc_nst.data.soundfont import GM_PROGRAM_NAMES

        program = int(text)
        if 0 <= program < 128 and GM_PROGRAM_NAMES[program].lower() in lowered:
            return lowered.index(GM_PROGRAM_NAMES[program].lower())
    return None


def style_class(
    clf: Classifier, label: str | None, style_audio: np.ndarray | None
) -> tuple[int | None, str]:
    """``(class index, source)``: from the label (``"manifest"``) or the style audio's top-1
    class (``"classifier"``); ``(None, "none")`` when neither is available."""
    if label:
        idx = clf.index(label)
        if idx is not None:
            return idx, "manifest"
    if style_audio is not None:
        return int(np.argmax(clf.probabilities(style_audio))), "classifier"
    return None, "none"


def judge_style(probs: np.ndarray, style_index: int, classes: list[str]) -> dict[str, object]:
    """``style_top1``, ``style_prob`` and ``output_class`` from an output's probabilities."""
    top = int(np.argmax(probs))
    return {
        "style_top1": float(top == style_index),
        "style_prob": float(probs[style_index]),
        "output_class": classes[top],
    }
