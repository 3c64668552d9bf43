"""Known answers of the spectral shape, loss, convergence, runtime and classifier metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hpc_nst.audio.spectrogram import log_magnitude
from hpc_nst.config import STFTConfig
from hpc_nst.metrics import run, spectral, style_class
from hpc_nst.models.alexnet import AudioAlexNet

SR = 16000


def sine(f: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32)


def test_centroid_of_a_sine_is_its_frequency_and_bandwidth_small():
    assert spectral.spectral_centroid(sine(1000.0)) == pytest.approx(1000.0, rel=0.02)
    assert spectral.spectral_bandwidth(sine(1000.0)) < 100.0
    two = sine(500.0) + sine(1500.0)  # equal magnitudes: centroid in the middle, spread 500 Hz
    assert spectral.spectral_centroid(two) == pytest.approx(1000.0, rel=0.02)
    assert spectral.spectral_bandwidth(two) == pytest.approx(500.0, rel=0.1)
    assert spectral.spectral_centroid(np.zeros(SR, np.float32)) == 0.0


def test_final_losses_take_the_last_recorded_value():
    curves = np.array([[3.0, 2.0, 1.0, np.nan], [5.0, 4.0, np.inf, np.nan]], np.float32)
    assert run.final_losses(curves, 3, ("total", "style")) == {"loss_total": 1.0,
                                                               "loss_style": math.inf}
    assert all(math.isnan(v) for v in run.final_losses(curves, 0, ("total", "x")).values())


def test_spectral_convergence_zero_for_consistent_and_large_for_wrong_audio():
    stft = STFTConfig()
    x = sine(440.0, 0.5)
    spec = log_magnitude(torch.from_numpy(x), stft).numpy()
    assert run.spectral_convergence(spec, x, stft) == pytest.approx(0.0, abs=1e-5)
    assert run.spectral_convergence(spec, np.zeros_like(x), stft) == pytest.approx(1.0)
    assert run.spectral_convergence(spec, sine(880.0, 0.5), stft) > 1.0


def test_runtime_shares_the_batch_and_adds_loading():
    t = {"features_s": 1.0, "optimise_s": 6.0, "griffin_lim_s": 1.0, "load_s": 0.5}
    assert run.runtime(t, 4) == pytest.approx(2.5)
    assert run.runtime({"load_s": 0.25}, 2) == 0.25
    assert math.isnan(run.runtime({}, 1))


def test_class_index_by_name_or_gm_program():
    classes = ["Violin", "Orchestral Harp", "Flute"]
    assert style_class.class_index("violin", classes) == 0
    assert style_class.class_index("46", classes) == 1  # GM program 46 = Orchestral Harp
    assert style_class.class_index("tuning fork", classes) is None
    assert style_class.class_index("", classes) is None


def test_judge_style_with_a_tiny_random_model():
    torch.manual_seed(0)
    clf = style_class.Classifier(AudioAlexNet(n_classes=3, width=4).eval(), ["a", "b", "c"])
    probs = clf.probabilities(sine(440.0, 0.5))
    assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-5)
    top = int(np.argmax(probs))
    assert style_class.judge_style(probs, top, clf.classes) == {
        "style_top1": 1.0, "style_prob": pytest.approx(float(probs[top])),
        "output_class": clf.classes[top]}
    other = (top + 1) % 3
    assert style_class.judge_style(probs, other, clf.classes)["style_top1"] == 0.0
    # The style class: from the label when it names a class, else the style audio's top-1.
    assert style_class.style_class(clf, "B", None) == (1, "manifest")
    assert style_class.style_class(clf, "unknown", sine(440.0, 0.5)) == (top, "classifier")
    assert style_class.style_class(clf, None, None) == (None, "none")


def test_spectral_shape_equals_the_two_functions():
    x = sine(300.0) + 0.3 * sine(2500.0)
    assert spectral.spectral_shape(x) == (spectral.spectral_centroid(x),
                                          spectral.spectral_bandwidth(x))
    assert spectral.spectral_shape(np.zeros(100, np.float32)) == (0.0, 0.0)
