"""A depthwise convolution whose CPU backward avoids oneDNN's slow depthwise backward kernels.

Why: on the CPU, oneDNN's backward of a depthwise conv at search sizes costs 2-10x its
forward for 3x3 kernels and 5-50x for 5x5 and dilated ones (e.g. a dilated 5x5 on
32 x 64 x 8 x 8: forward 64 us, input gradient 556 us, weight gradient 3 ms), and it is most
of a search step's time. Both gradients of a stride-1 "same" depthwise conv are themselves
forward convolutions, which oneDNN runs fast:

* input gradient: the conv of the output gradient with the kernel flipped in both axes;
* weight gradient: per channel, the correlation of the padded input with the output
  gradient, summed over the batch. Written as one depthwise forward conv with the batch folded
  into the channels, the output gradient as the (large) kernel and the original dilation
  as the stride, then a sum over the batch. It wins for 5x5 and dilated kernels; for plain
  3x3 kernels oneDNN's own weight gradient is faster and is kept.

Both are ordinary differentiable ops, so double backprop (Hessian eigenvalues) works, and
each gradient is computed only when the running backward pass needs it (the alpha step's
backward needs no weight gradients). A stride-2 conv runs its forward at stride 2 and
spreads the output gradient onto the stride-1 positions for both gradients. Used by the
fused cell (:mod:`.fused_cell`) on the CPU only; other devices, autocast and other shapes use
``F.conv2d`` unchanged.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor


def _needed(ctx: Any, i: int) -> bool:
    """Whether the running backward pass uses the gradient of input ``i`` (e.g. not the
    weights' in ``autograd.grad(loss, alphas)``). ``ctx.needs_input_grad`` alone only says
    that the input requires grad."""
    if not ctx.needs_input_grad[i]:
        return False
    node = ctx.next_functions[i][0]
    will = getattr(torch._C, "_will_engine_execute_node", None)
    if node is None or will is None:
        return True
    try:
        return bool(will(node))
    except RuntimeError:  # not inside an engine call (e.g. backward invoked by hand)
        return True


def weight_grad(x: Tensor, g: Tensor, k: int, padding: int, dilation: int) -> Tensor:
    """d/dw of sum(g * depthwise_conv(x, w)) for a stride-1 conv, w of shape (C, 1, k, k)."""
    n, c, hx, wx = x.shape
    h, w = g.shape[-2:]
    hp, wp = hx + 2 * padding, wx + 2 * padding
    # (1, N*C, Hp, Wp) with N*C innermost: oneDNN's fast NHWC depthwise layout, padded and
    # reordered in one copy
    xp = x.new_zeros(hp, wp, n, c)
    xp[padding:padding + hx, padding:padding + wx] = x.permute(2, 3, 0, 1)
    inp = xp.reshape(1, hp, wp, n * c).permute(0, 3, 1, 2)
    out = F.conv2d(inp, g.reshape(n * c, 1, h, w), stride=dilation, groups=n * c)
    return out[..., :k, :k].reshape(n, c, k, k).sum(0).unsqueeze(1)


class _DepthwiseSame(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, stride: int, padding: int,
                dilation: int) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.dilation = stride, padding, dilation
        return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        s, p, d = ctx.stride, ctx.padding, ctx.dilation
        k = weight.shape[-1]
        gx = gw = None
        need_x, need_w = _needed(ctx, 0), _needed(ctx, 1)
        if s == 2 and (need_x or need_w):
            # a stride-2 "same" conv is the stride-1 conv read at even positions: its
            # gradient is the stride-1 gradient of g spread onto those positions
            up = torch.zeros_like(x)
            up[:, :, ::2, ::2] = g
            g = up
        if need_x:
            gx = F.conv2d(g, weight.flip(-1, -2), None, 1, p, d, x.shape[1])
        if need_w:
            if k >= 5 or d > 1:
                gw = weight_grad(x, g, k, p, d)
            else:
                gw = torch.ops.aten.convolution_backward(
                    g, x, weight, None, [1, 1], [p, p], [d, d], False, [0, 0], x.shape[1],
                    [False, True, False])[1]
        return gx, gw, None, None, None


def depthwise_conv2d(x: Tensor, weight: Tensor, stride: tuple[int, int],
                     padding: tuple[int, int], dilation: tuple[int, int]) -> Tensor:
    """``F.conv2d(x, weight, groups=C, ...)``, with the fast backward where it applies: CPU
    (no autocast), square odd kernel, "same" padding, stride 1 or 2 (oneDNN's strided
    depthwise backward measured 3.6-6 ms per call at 32 x 64 x 16 x 16; spread onto the
    stride-1 positions it is well under 1 ms)."""
    k = weight.shape[-1]
    s = stride[0]
    if (x.device.type == "cpu" and not torch.is_autocast_enabled("cpu") and s in (1, 2)
            and stride[1] == s and weight.shape[-2] == k and k % 2 == 1
            and dilation[0] == dilation[1]
            and padding[0] == padding[1] == dilation[0] * (k - 1) // 2
            and weight.shape[0] == x.shape[1] and weight.shape[1] == 1):
        return _DepthwiseSame.apply(x, weight, s, padding[0], dilation[0])
    return F.conv2d(x, weight, None, stride, padding, dilation, x.shape[1])
