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


def test_gram_value_and_gradient_in_both_layouts():
    """The one-product backward is the exact gradient, for NCHW and channels-last features."""
    torch.manual_seed(0)
    lengths = torch.tensor([9, 6])
    base = torch.randn(2, 5, 7, 9, dtype=torch.float64)
    expected = torch.einsum("bcft,bdft->bcd", base, base) / (lengths * 7)[:, None, None]
    for layout in (torch.contiguous_format, torch.channels_last):
        x = base.contiguous(memory_format=layout).requires_grad_(True)
        assert torch.allclose(L.gram(x, lengths), expected)
        assert torch.autograd.gradcheck(lambda v: L.gram(v, lengths), (x,))
