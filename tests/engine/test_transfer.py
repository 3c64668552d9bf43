import numpy as np
import pytest
import torch

from hpc_nst.config import apply_overrides
from hpc_nst.engine.device import TransferError, estimate_bytes
from hpc_nst.engine.methods import run_method, static_eq
from hpc_nst.engine.transfer import transfer_batch
from tests.conftest import harmonic_tone


def _pairs():
    contents = [harmonic_tone(220, 0.6), harmonic_tone(330, 0.43), harmonic_tone(150, 0.9)]
    styles = [harmonic_tone(440, 0.5, 1), harmonic_tone(660, 1.1, 3), harmonic_tone(500, 0.3, 2)]
    return contents, styles


def test_batched_equals_each_pair_alone(tiny_job):
    contents, styles = _pairs()
    seeds = [11, 12, 13]
    batched = transfer_batch(contents, styles, tiny_job, seeds=seeds)
    for i in range(3):
        (alone,) = transfer_batch([contents[i]], [styles[i]], tiny_job, seeds=[seeds[i]])
        assert batched[i].output.shape == alone.output.shape
        # same maths; the CPU convolution may pick another blocking for another batch size, so
        # values differ in rounding, and Adam turns a rounding-level gradient of either sign
        # into a step of +-lr: a handful of values move by up to ~1e-2. Mixing up pairs
        # (another style) gives a mean difference of 2e-2 and a 99.9th percentile of 0.3.
        diff = np.abs(batched[i].output - alone.output)
        assert diff.mean() < 2e-5 and np.percentile(diff, 99.9) < 1e-3, (diff.mean(), diff.max())
        assert (diff > 1e-3).mean() < 2e-3
        np.testing.assert_allclose(batched[i].losses["total"], alone.losses["total"], rtol=1e-3)


def test_output_has_content_length_and_all_parts(tiny_job):
    contents, styles = _pairs()
    results = transfer_batch(contents, styles, tiny_job)
    for c, r in zip(contents, results):
        assert r.audio.shape == c.shape and np.isfinite(r.audio).all()
        assert r.output.shape == r.init.shape == r.content.shape
        assert r.output.shape[0] == 257 and (r.output >= 0).all()
        assert set(r.losses) == {"total", "content", "style", "envelope", "timbre"}
        assert len(r.losses["total"]) == tiny_job.optim.iterations + 1
        assert r.error is None and 0 <= r.spectral_convergence < 2


def test_loss_goes_down_with_adam_and_lbfgs(tiny_job):
    c, s = harmonic_tone(220, 0.5), harmonic_tone(440, 0.5, 1)
    for opt in ("adam", "lbfgs"):
        cfg = apply_overrides(tiny_job, {"optimizer": opt, "iterations": "15"})
        (r,) = transfer_batch([c], [s], cfg)
        assert r.losses["total"][-1] < 0.7 * r.losses["total"][0], opt


def test_fixed_seed_reproduces_and_seed_changes_result(tiny_job):
    c, s = harmonic_tone(220, 0.5), harmonic_tone(440, 0.5, 1)
    a = transfer_batch([c], [s], tiny_job, seeds=[1])[0]
    b = transfer_batch([c], [s], tiny_job, seeds=[1])[0]
    d = transfer_batch([c], [s], tiny_job, seeds=[2])[0]
    assert np.array_equal(a.output, b.output) and np.array_equal(a.audio, b.audio)
    assert not np.allclose(a.init, d.init)


def test_init_content_starts_at_content(tiny_job):
    cfg = apply_overrides(tiny_job, {"init": "content", "iterations": "0"})
    (r,) = transfer_batch([harmonic_tone(220, 0.5)], [harmonic_tone(440, 0.5)], cfg)
    np.testing.assert_allclose(r.init, r.content)
    assert r.losses["content"][-1] < 1e-8


def test_silent_audio_never_produces_nan(tiny_job):
    silent = np.zeros(8000, np.float32)
    for c, s in (
        (silent, harmonic_tone(440, 0.5)),
        (harmonic_tone(220, 0.5), silent),
        (silent, silent),
    ):
        (r,) = transfer_batch([c], [s], tiny_job)
        assert r.error is None
        assert np.isfinite(r.audio).all() and np.isfinite(r.output).all()
        assert all(np.isfinite(v).all() for v in r.losses.values())


def test_too_short_and_too_long_inputs_fail_clearly(tiny_job):
    with pytest.raises(TransferError, match="content #0: too short"):
        transfer_batch([np.zeros(100, np.float32)], [harmonic_tone(440, 0.5)], tiny_job)
    # An hour of audio per item, 64 items: far more than this machine's memory.
    assert estimate_bytes(64, 257, 360_000, 32) > 2**40
    long = np.zeros(16000 * 60 * 20, np.float32)
    cfg = apply_overrides(tiny_job, {"width": "4096"})
    short = harmonic_tone(220, 0.5)
    with pytest.raises(TransferError, match="inputs too long for memory") as exc:
        transfer_batch([long], [short], cfg)
    assert "window_s=30" in str(exc.value) and "excerpt of the style" not in str(exc.value)
    # A long style: windows of the content do not help (each reads the whole style).
    windowed = apply_overrides(cfg, {"window_s": "30"})
    with pytest.raises(TransferError, match="style 1200 s") as exc:
        transfer_batch([short], [long], windowed)
    assert "shorter excerpt of the style" in str(exc.value)
    assert "window_s" not in str(exc.value)
    with pytest.raises(TransferError) as exc:  # both too long alone: both named
        transfer_batch([long], [long], cfg)
    assert "window_s=30" in str(exc.value) and "excerpt of the style" in str(exc.value)


@pytest.mark.parametrize("method", ["content-copy", "style-copy", "eq"])
def test_baseline_methods(tiny_job, method):
    c, s = harmonic_tone(220, 0.5), harmonic_tone(440, 0.7, 1)
    (r,) = run_method([c], [s], apply_overrides(tiny_job, {"method": method}))
    expected = {"content-copy": c, "style-copy": s}.get(method)
    if expected is not None:
        assert np.array_equal(r.audio, expected)
    else:
        assert r.audio.shape == c.shape


def test_static_eq_moves_spectrum_towards_style(tiny_job):
    c, s = harmonic_tone(220, 1.0, partials=10), harmonic_tone(440, 1.0, partials=1)
    out = static_eq(c, s, tiny_job)

    def centroid(x):
        mag = np.abs(np.fft.rfft(x))
        return (mag * np.arange(len(mag))).sum() / mag.sum()

    assert abs(centroid(out) - centroid(s)) < abs(centroid(c) - centroid(s))


def test_ulyanov_baseline_reduces_its_loss(tiny_job):
    cfg = apply_overrides(tiny_job, {"method": "ulyanov", "optimizer": "lbfgs", "iterations": "10"})
    c, s = harmonic_tone(220, 0.4), harmonic_tone(440, 0.3, 1)
    (r,) = run_method([c], [s], cfg, seeds=[0])
    assert r.error is None and r.audio.shape == c.shape
    assert r.losses["total"][-1] < 0.5 * r.losses["total"][0]
    assert set(r.losses) == {"total", "content", "style", "envelope", "timbre"}


def test_objective_of_a_batch_is_each_items_alone(tiny_job):
    """Every item's loss depends on that item alone (what per-pair results across batch sizes
    rest on): the objective of a padded batch gives each item the terms it has by itself."""
    import torch

    from hpc_nst.engine.objective import Objective
    from hpc_nst.models.checkpoint import resolve_model

    gen = torch.Generator().manual_seed(0)
    content, style = torch.rand(5, 257, 40, generator=gen), torch.rand(5, 257, 30, generator=gen)
    lengths, s_lengths = torch.tensor([40, 33, 40, 20, 38]), torch.tensor([30, 30, 12, 25, 30])
    model = resolve_model(tiny_job)
    objective = Objective.build(model, tiny_job.loss, content, lengths, style, s_lengths)
    x = torch.rand(5, 257, 40, generator=gen)
    total, terms = objective(x)
    for i in range(5):
        one = Objective.build(model, tiny_job.loss, content[i:i + 1], lengths[i:i + 1],
                              style[i:i + 1], s_lengths[i:i + 1])
        one_total, one_terms = one(x[i:i + 1])
        torch.testing.assert_close(one_total, total[i:i + 1], rtol=1e-4, atol=1e-6)
        for k in terms:
            torch.testing.assert_close(one_terms[k], terms[k][i:i + 1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("frames, s_frames, filters", [(30, 22, 512), (40, 40, 64)])
def test_ulyanov_gram_distance_forms_agree(frames, s_frames, filters):
    """The frame-space Gram distance (used when cheaper) equals the filter form, value and grad."""
    import torch

    from hpc_nst.engine.ulyanov import GramTarget, _gram

    gen = torch.Generator().manual_seed(1)
    style = torch.rand(filters, s_frames, generator=gen)
    feat = torch.rand(filters, frames, generator=gen, requires_grad=True)
    target = GramTarget.build(style, frames)
    assert (target.feat is not None) == (2 * (frames + s_frames) < filters)
    got = target.distance(feat)
    (g_got,) = torch.autograd.grad(got, feat)
    want = (_gram(feat.double()) - _gram(style.double())).pow(2).sum()
    (g_want,) = torch.autograd.grad(want, feat)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g_got.double(), g_want.double(), rtol=1e-4, atol=1e-6)


def test_bf16_precision_runs_the_objective_in_bfloat16_and_still_optimises(tiny_job, monkeypatch):
    from hpc_nst.engine.objective import Objective

    seen = []
    call = Objective.__call__

    def spy(self, x):
        total, terms = call(self, x)
        on = torch.is_autocast_enabled("cpu")
        seen.append(on and torch.get_autocast_dtype("cpu") == torch.bfloat16)
        return total, terms

    monkeypatch.setattr(Objective, "__call__", spy)
    c, s = harmonic_tone(220, 0.5), harmonic_tone(440, 0.5, 1)
    cfg = apply_overrides(tiny_job, {"optim.precision": "bf16", "iterations": "15"})
    (r,) = transfer_batch([c], [s], cfg, device="cpu")
    assert seen and all(seen)  # every evaluation, the final one included, under autocast
    assert r.error is None and np.isfinite(r.output).all()
    assert r.losses["total"][-1] < 0.7 * r.losses["total"][0]
    seen.clear()
    (f,) = transfer_batch([c], [s], apply_overrides(tiny_job, {"iterations": "15"}),
                          device="cpu")
    assert seen and not any(seen)  # fp32, the default: no autocast
    assert not np.array_equal(r.output, f.output)


def test_precision_is_checked_and_fp32_keeps_the_digest_of_older_stores(tiny_job):
    from hpc_nst.config import JobConfig
    from hpc_nst.errors import ConfigError

    with pytest.raises(ConfigError, match="optim.precision"):
        apply_overrides(tiny_job, {"optim.precision": "fp16"})
    assert "precision" not in JobConfig().effective()["optim"]  # a store made before the key
    bf16 = apply_overrides(JobConfig(), {"optim.precision": "bf16"})
    assert bf16.digest() != JobConfig().digest()


@pytest.mark.parametrize("term", ["modulation", "lagged_gram"])
def test_bf16_runs_with_every_extra_term(tiny_job, term):
    """Under autocast the modulation term's octave pooling came out bfloat16 and its write
    into the float32 result failed: every pair of a bf16 job with the term failed."""
    c, s = harmonic_tone(220, 0.5), harmonic_tone(440, 0.5, 1)
    cfg = apply_overrides(tiny_job, {"optim.precision": "bf16", "iterations": "3",
                                     f"loss.term_weights.{term}": "1"})
    (r,) = transfer_batch([c], [s], cfg, device="cpu")
    assert r.error is None and np.isfinite(r.output).all() and term in r.losses
