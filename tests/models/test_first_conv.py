import pytest
import torch
from torch import nn

from hpc_nst.models.first_conv import _col2im, _SingleChannelConv, first_conv


def _conv(k: int = 3, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    conv = nn.Conv2d(1, 16, k, padding=k // 2)
    for p in conv.parameters():
        p.requires_grad_(False)
    return conv


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_output_and_input_gradient_as_the_convolution(k, channels_last):
    conv = _conv(k)
    x = torch.randn(2, 1, 37, 53)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    up = torch.randn(2, 16, 37, 53).contiguous(memory_format=fmt)
    grads = []
    for fn in (conv, lambda h: first_conv(conv, h)):
        xi = x.clone().requires_grad_(True)
        y = fn(xi.contiguous(memory_format=fmt))
        (y * up).sum().backward()
        grads.append((y.detach(), xi.grad))
    torch.testing.assert_close(grads[1][0], grads[0][0])
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-4)


def test_double_precision_gradcheck():
    conv = _conv().double()
    x = torch.randn(1, 1, 7, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda h: _SingleChannelConv.apply(h, conv.weight, conv.bias, 1), (x,))


def test_trainable_weights_take_the_ordinary_path_and_get_their_gradient():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, 3, padding=1)
    x = torch.randn(1, 1, 8, 8, requires_grad=True)
    first_conv(conv, x).sum().backward()
    assert conv.weight.grad is not None and x.grad is not None


def test_under_bfloat16_autocast_the_gradient_keeps_the_input_dtype():
    conv = _conv()
    x = torch.randn(1, 1, 16, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = first_conv(conv, x)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert x.grad.dtype == torch.float32
    ref = x.detach().clone().requires_grad_(True)
    conv(ref).sum().backward()
    torch.testing.assert_close(x.grad, ref.grad, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("k", [3, 5])
def test_the_shifted_add_col2im_is_fold(k):
    cols = torch.randn(2, k * k, 31 * 17, generator=torch.Generator().manual_seed(k))
    expected = nn.functional.fold(cols, (31, 17), k, padding=k // 2)
    assert torch.equal(_col2im(cols, (31, 17), k, k // 2), expected)  # the same sums, in order
