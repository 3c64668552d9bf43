import pytest
import torch

from hpc_nst.config import load_job
from hpc_nst.engine.objective import Objective
from hpc_nst.losses import style_transfer as L
from hpc_nst.models.alexnet import random_model


def _obj(content, style):
    cfg = load_job(overrides={"model": "random"})
    model = random_model(width=4)
    return Objective.build(
        model,
        cfg.loss,
        content,
        torch.tensor([content.shape[-1]] * len(content)),
        style,
        torch.tensor([style.shape[-1]] * len(style)),
    )


def test_each_term_is_zero_at_its_target():
    content, style = torch.rand(1, 257, 50) * 3, torch.rand(1, 257, 50) * 3
    obj = _obj(content, style)
    _, at_content = obj(content)
    _, at_style = obj(style)
    assert float(at_content["content"]) < 1e-10
    for term in ("style", "envelope", "timbre"):
        assert float(at_style[term]) < 1e-10
    for term in ("content", "style", "envelope", "timbre"):
        assert float(_obj(content, style)(torch.rand(1, 257, 50))[1][term]) > 1e-4


def test_gram_is_normalised_by_positions():
    f = torch.rand(1, 6, 5, 20)
    tiled = torch.cat([f, f, f], dim=-1)
    assert torch.allclose(L.gram(f, torch.tensor([20])), L.gram(tiled, torch.tensor([60])))


def test_gram_ignores_padding_via_lengths():
    f = torch.rand(1, 3, 4, 10)
    padded = torch.cat([f, torch.zeros(1, 3, 4, 5)], dim=-1)
    assert torch.allclose(L.gram(f, torch.tensor([10])), L.gram(padded, torch.tensor([10])))


def test_style_envelope_is_resampled_to_content_length():
    env = torch.tensor([0.0, 1.0, 2.0, 3.0])
    out = L.resample_envelope(env, 4, 7)
    assert out.shape == (7,)
    assert torch.allclose(out, torch.linspace(0, 3, 7))
    assert torch.allclose(L.resample_envelope(env, 1, 3), torch.zeros(3))


def test_envelopes():
    x = torch.zeros(1, 257, 4)
    x[0, :, 2] = 2.0
    assert torch.allclose(L.temporal_envelope(x), torch.tensor([[0, 0, 2.0, 0]]))
    assert torch.allclose(L.frequency_envelope(x, torch.tensor([4])), torch.full((1, 257), 0.5))
    assert torch.allclose(L.frequency_envelope(x, torch.tensor([2])), torch.zeros(1, 257))


def test_silent_inputs_give_finite_losses_and_gradients():
    obj = _obj(torch.zeros(1, 257, 30), torch.zeros(1, 257, 30))
    x = torch.zeros(1, 257, 30, requires_grad=True)
    total, terms = obj(x)
    total.sum().backward()
    assert torch.isfinite(total).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(v).all() for v in terms.values())


@pytest.mark.parametrize("batch", [1, 2])  # one pair takes the mm path of the backward
def test_gram_value_and_gradient_in_both_layouts(batch):
    """The one-product backward is the exact gradient, for NCHW and channels-last features."""
    torch.manual_seed(0)
    lengths = torch.tensor([9, 6])[:batch]
    base = torch.randn(batch, 5, 7, 9, dtype=torch.float64)
    expected = torch.einsum("bcft,bdft->bcd", base, base) / (lengths * 7)[:, None, None]
    for layout in (torch.contiguous_format, torch.channels_last):
        x = base.contiguous(memory_format=layout).requires_grad_(True)
        assert torch.allclose(L.gram(x, lengths), expected)
        assert torch.autograd.gradcheck(lambda v: L.gram(v, lengths), (x,))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_content_loss_value_and_gradient(layout):
    """The one-pass squared distance equals the plain formula and is its exact gradient."""
    torch.manual_seed(0)
    lengths = torch.tensor([9, 6])
    target = torch.randn(2, 5, 7, 9, dtype=torch.float64).contiguous(memory_format=layout)
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64).contiguous(memory_format=layout)
    x.requires_grad_(True)
    count = (lengths * 7 * 5).double()
    plain = ((x - target) ** 2).sum(dim=(1, 2, 3)) / count / (
        (target**2).sum(dim=(1, 2, 3)) / count + L.EPS)
    torch.testing.assert_close(L.content_loss(x, target, lengths), plain)
    assert torch.autograd.gradcheck(lambda v: L.content_loss(v, target, lengths), (x,))


def _comb(f0_bins: float, tilt_bins: float, frames: int = 6) -> torch.Tensor:
    """log1p magnitude of a harmonic comb (partials every ``f0_bins``) under ``exp(-f/tilt)``."""
    f = torch.arange(257, dtype=torch.float64)
    dist = torch.remainder(f + f0_bins / 2, f0_bins) - f0_bins / 2
    mag = 100.0 * torch.exp(-f / tilt_bins) * (torch.exp(-(dist**2) / 2) + 1e-2)
    return torch.log1p(mag)[None, :, None].expand(1, 257, frames).float().contiguous()


def test_dct_basis_is_orthonormal_without_the_level():
    b = L.dct_basis(257, 20)
    assert torch.allclose(b @ b.T, torch.eye(20, dtype=b.dtype), atol=1e-10)
    assert torch.allclose(b @ torch.ones(257, dtype=b.dtype), torch.zeros(20, dtype=b.dtype),
                          atol=1e-10)  # a flat spectrum has no cepstrum beyond coefficient 0


def test_cepstral_envelope_ignores_gain_and_padding():
    x = _comb(9.0, 40.0)
    lengths = torch.tensor([6])
    ref = L.cepstral_envelope(x, lengths, 20)
    louder = torch.log1p(10.0 * torch.expm1(x))  # +20 dB: only coefficient 0, which is dropped
    assert torch.allclose(L.cepstral_envelope(louder, lengths, 20), ref, atol=1e-3)
    padded = torch.cat([x, torch.full((1, 257, 3), 7.0)], dim=-1)
    assert torch.allclose(L.cepstral_envelope(padded, lengths, 20), ref, atol=1e-4)
    flat = torch.full((1, 257, 6), 3.0)
    assert L.cepstral_envelope(flat, lengths, 20).abs().max() < 1e-3


def test_cepstral_timbre_separates_envelope_from_pitch():
    """Two pitches under one spectral envelope are near in the cepstral term and far in the
    per-bin one; two envelopes at one pitch are far in the cepstral term."""
    lengths = torch.tensor([6])

    def loss(a: torch.Tensor, b: torch.Tensor, envelope: str) -> float:
        target = L.timbre_target(b, lengths, envelope, 20)
        return float(L.timbre_loss(a, target, lengths, envelope, 20)[0])

    low, high, dark = _comb(9.0, 40.0), _comb(13.0, 40.0), _comb(9.0, 12.0)
    assert loss(low, low, "cepstral") == 0.0
    assert loss(low, high, "cepstral") < 0.1 * loss(low, dark, "cepstral")
    assert loss(low, high, "spectrum") > loss(low, dark, "spectrum")  # the comb dominates


def test_cepstral_timbre_has_finite_gradients_from_noise():
    gen = torch.Generator().manual_seed(0)
    x = (0.1 * torch.randn(2, 257, 20, generator=gen)).requires_grad_(True)
    lengths = torch.tensor([20, 12])
    target = L.timbre_target(_comb(9.0, 40.0, 20).expand(2, -1, -1), lengths, "cepstral", 20)
    L.timbre_loss(x, target, lengths, "cepstral", 20).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_cepstral_timbre_is_bounded_for_a_flat_style_and_ignores_huge_padding():
    lengths = torch.tensor([6])
    x = _comb(9.0, 40.0)
    for style in (torch.zeros(1, 257, 6), torch.full((1, 257, 6), 2.0)):  # silent, flat
        target = L.timbre_target(style, lengths, "cepstral", 12)
        loss = L.timbre_loss(x, target, lengths, "cepstral", 12)
        # the scale never drops below 1 dB^2 per coefficient: the loss is the comb's own cepstrum
        own = L.cepstral_envelope(x, lengths, 12)
        assert torch.allclose(loss, own.pow(2).sum(-1) / max(12.0, float(target.pow(2).sum())))
    padded = torch.cat([x, torch.full((1, 257, 4), 200.0)], dim=-1)  # expm1 would overflow
    padded.requires_grad_(True)
    env = L.cepstral_envelope(padded, lengths, 12)
    env.sum().backward()
    assert torch.isfinite(env).all() and torch.isfinite(padded.grad).all()
    assert torch.allclose(env, L.cepstral_envelope(x, lengths, 12), atol=1e-4)
    with pytest.raises(ValueError, match="coefficients >= 1"):
        L.cepstral_envelope(x, lengths, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mean_floored_db_matches_the_plain_formula_and_its_gradient(dtype):
    """The one-pass mean dB spectrum against autograd through :func:`floored_db`: padding,
    bins under the floor, below 0 and past the clamp at 80 included."""
    gen = torch.Generator().manual_seed(3)
    x = (3.0 * torch.rand(2, 257, 30, generator=gen, dtype=torch.float64) - 0.5)
    x[0, :5, :4] = 85.0  # past the clamp: no gradient there
    x[1, 100:, :] = 1e-6  # under the floor (80 dB below the peak)
    x = x.to(dtype).requires_grad_(True)
    lengths = torch.tensor([30, 17])
    grad = torch.randn(2, 257, generator=gen, dtype=torch.float64).to(dtype)

    plain = L.floored_db(x, lengths, L.FLOOR_DB).sum(-1) / lengths[:, None].to(dtype)
    (g_plain,) = torch.autograd.grad(plain, x, grad)
    fast = L._MeanFlooredDb.apply(x, lengths, L.FLOOR_DB)
    (g_fast,) = torch.autograd.grad(fast, x, grad)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(fast, plain, rtol=tol, atol=tol)
    assert torch.allclose(g_fast, g_plain, rtol=tol, atol=tol * float(g_plain.abs().max()))
    assert g_fast[0, :5, :4].abs().max() == 0 and g_fast[1, :, 17:].abs().max() == 0
    assert g_fast[1, 100:].abs().max() == 0


def test_mean_floored_db_passes_gradcheck():
    gen = torch.Generator().manual_seed(4)
    x = (0.5 + 2.0 * torch.rand(2, 40, 9, generator=gen, dtype=torch.float64))
    x.requires_grad_(True)
    lengths = torch.tensor([9, 6])
    assert torch.autograd.gradcheck(lambda v: L._MeanFlooredDb.apply(v, lengths, 80.0), (x,))


def test_mean_floored_db_edge_lengths_and_heavy_padding():
    """Lengths past the tensor count its frames only (as the padding mask does); a zero
    length gives zeros and no gradient; float32 stays exact under heavy padding."""
    gen = torch.Generator().manual_seed(5)
    x = (0.5 + 2.0 * torch.rand(3, 20, 6, generator=gen)).requires_grad_(True)
    lengths = torch.tensor([9, 0, 6])
    out = L._MeanFlooredDb.apply(x, lengths, 80.0)
    full = L._MeanFlooredDb.apply(x, torch.tensor([6, 6, 6]), 80.0)
    assert torch.allclose(out[0], full[0]) and torch.allclose(out[2], full[2])
    assert out[1].abs().max() == 0
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad[1].abs().max() == 0 and torch.isfinite(grad).all()

    loud = torch.zeros(1, 4, 2000)
    loud[0, :, :5] = torch.tensor([79.0, 60.0, 10.0, 1.0])[:, None]
    mean = L._MeanFlooredDb.apply(loud, torch.tensor([5]), 80.0)
    ref = L._MeanFlooredDb.apply(loud[..., :5].double(), torch.tensor([5]), 80.0)
    assert torch.allclose(mean.double(), ref, atol=1e-3)
