"""The network's first convolution (one input channel) with a faster input gradient on CPUs.

oneDNN computes the input gradient of a 1-channel 3x3 convolution as a ``C -> 1`` convolution,
which it runs at a few GFLOP/s: at width 16 on 257x257 maps it took 3.0 ms of a 29 ms
optimisation step on one thread, for 1 % of the step's FLOPs (``python
benchmarks/bench_engine.py --profile``). The same gradient is one matrix product (the kernel
taps times the output gradient, ``(k*k, C) x (C, H*W)``) and a col2im: 1.0 ms, of which
``F.fold``'s col2im took 0.93 ms; done as k*k shifted in-place adds instead, 0.16 ms (the same
sums, equal to the bit in ``tests/models/test_first_conv.py``).
Used for frozen weights on the CPU (the feature network during style transfer); anything else
(training, other devices) takes the ordinary convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import FunctionCtx


class _SingleChannelConv(torch.autograd.Function):
    """``conv2d(x, weight, bias, padding)`` for ``x`` ``(B, 1, H, W)``, stride 1, same size,
    frozen ``weight``/``bias``: the input gradient by a product and a col2im."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None, padding: int) -> torch.Tensor:
        ctx.save_for_backward(weight)
        ctx.padding = padding
        ctx.size, ctx.dtype = tuple(x.shape[-2:]), x.dtype
        return F.conv2d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (weight,) = ctx.saved_tensors
        b, c, h, w = grad.shape
        k = weight.shape[-1]
        taps = weight.reshape(c, k * k).t().to(grad.dtype)  # (k*k, C); bf16 under autocast
        # (B, C, H*W): a view for channels-last and contiguous gradients alike
        cols = torch.matmul(taps, grad.reshape(b, c, h * w))
        return _col2im(cols, ctx.size, k, ctx.padding).to(ctx.dtype), None, None, None


def _col2im(cols: torch.Tensor, size: tuple[int, int], k: int, padding: int) -> torch.Tensor:
    """``F.fold(cols, size, k, padding=padding)`` for stride 1 and same-size output, as k*k
    shifted adds into a padded map (``F.fold`` runs its col2im several times slower)."""
    b, (h, w) = cols.shape[0], size
    taps = cols.view(b, k, k, h, w)
    out = cols.new_zeros(b, 1, h + 2 * padding, w + 2 * padding)
    for i in range(k):
        rows = out[:, 0, i: i + h]
        for j in range(k):
            rows[..., j: j + w].add_(taps[:, i, j])
    return out[:, :, padding: padding + h, padding: padding + w].contiguous()


def first_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)``, by :class:`_SingleChannelConv` where its input gradient is all that
    autograd needs on a CPU (1 input channel, square odd kernel, stride 1, same padding,
    frozen parameters)."""
    k = conv.kernel_size[0]
    fast = (x.device.type == "cpu" and x.requires_grad and torch.is_grad_enabled()
            and conv.in_channels == 1 and conv.groups == 1 and conv.kernel_size == (k, k)
            and k % 2 == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.padding == (k // 2, k // 2) and conv.padding_mode == "zeros"
            and not any(p.requires_grad for p in conv.parameters()))
    if not fast:
        return conv(x)
    return _SingleChannelConv.apply(x, conv.weight, conv.bias, k // 2)
