"""The trained default classifier shipped in the package and its model card."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_nst.config import STFTConfig, load_job
from hpc_nst.models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint, resolve_model

pytestmark = pytest.mark.skipif(
    not DEFAULT_CHECKPOINT.is_file(), reason="no trained classifier in this build"
)
CARD = DEFAULT_CHECKPOINT.parent / "MODEL_CARD.md"


def test_checkpoint_size_classes_and_card() -> None:
    assert DEFAULT_CHECKPOINT.stat().st_size <= 25 * 2**20
    model, meta = load_checkpoint(DEFAULT_CHECKPOINT, STFTConfig())
    assert len(meta["classes"]) == model.n_classes >= 80
    assert meta["heldout_split"] == "test" and meta["data_hash"]
    card = CARD.read_text()
    assert f"{meta['heldout_top1']:.1%}" in card and f"{meta['heldout_top5']:.1%}" in card
    assert meta["data_hash"] in card


def test_engine_loads_it_as_model_classifier() -> None:
    _, meta = load_checkpoint(DEFAULT_CHECKPOINT)
    for name in ("classifier", "default"):
        model = resolve_model(load_job(overrides={"model": name}))
        assert model.n_classes == len(meta["classes"]) and model.width == meta["width"]
    assert load_job(Path(__file__).parents[2] / "jobs" / "classifier-features.toml").model.name \
        == "classifier"


def test_names_unheard_notes(tmp_path) -> None:
    """Rendered notes at held-out pitches of three instruments: the right one in the top 5."""
    from hpc_nst.data.soundfont import default_soundfont, render_notes
    from hpc_nst.train.classify import classify_audio, top_k

    try:
        default_soundfont()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    pytest.importorskip("fluidsynth")
    model, meta = load_checkpoint(DEFAULT_CHECKPOINT, STFTConfig())
    cases = ((40, "Violin", 70), (73, "Flute", 75), (0, "Acoustic Grand Piano", 60))
    for program, name, pitch in cases:  # all three pitches are in the test split
        audio = render_notes([(pitch, 0.05, 1.8, 90)], program, duration=2.56)
        ranked = top_k(classify_audio(model, audio, STFTConfig()).overall, meta["classes"])
        assert name in [label for label, _ in ranked], (name, ranked)


def test_the_trained_features_from_the_content_keep_the_notes() -> None:
    """`jobs/classifier-features.toml` started from the content with the style's Gram at conv1
    only (README "The feature network"): the output still plays the content's two notes. From
    noise with the style at conv1-conv4 (the preset as it is) the output is unvoiced."""
    import numpy as np

    from hpc_nst.engine import note_analysis as N
    from hpc_nst.engine.methods import run_method
    from tests.engine.tones import SR, notes

    job = Path(__file__).parents[2] / "jobs" / "classifier-features.toml"
    content = notes([262.0, 392.0], seconds=0.6, gap_s=0.05)
    style = notes([150.0, 180.0, 200.0], seconds=0.4, decay_s=0.15, gap_s=0.0)

    def transfer(iterations: int) -> np.ndarray:
        cfg = load_job(job, {"optim": {"iterations": iterations, "init": "content"},
                             "loss": {"style_layers": ["conv1"], "style_layer_weights": [1.0]},
                             "griffin_lim": {"iterations": 30}})
        return run_method([content], [style], cfg, seeds=[0])[0].audio

    out, unchanged = transfer(60), transfer(0)
    spec = [np.log(np.abs(np.fft.rfft(x[: len(content)])) + 1e-6) for x in (out, unchanged)]
    moved = float(np.mean(np.abs(spec[0] - spec[1])))
    assert moved > 1.0, moved  # 4.2 here; one more Griffin-Lim iteration alone moves it 0.1
    f0, voiced = N.f0_track(out)
    for (a, b), want in (((0.1, 0.5), 262.0), ((0.75, 1.15), 392.0)):
        frames = slice(int(a * SR / N.HOP), int(b * SR / N.HOP))
        assert voiced[frames].mean() > 0.8
        got = float(np.median(f0[frames][voiced[frames]]))
        assert abs(1200 * np.log2(got / want)) < 50, (want, got)
