"""The ``nn.Module`` of each DARTS-family candidate op (the table that names them, with
what each one is, is :data:`.ops.OPS`).

Semantics follow quark0/darts and automl/RobustDARTS (see shared/reference/darts-family.md):
pools are 3x3 with padding 1 (avg excludes padding) and, in search, followed by a
non-affine BatchNorm; ``skip_connect`` is identity or FactorizedReduce at stride 2;
``sep_conv_k`` applies [ReLU, depthwise kxk, 1x1, BN] twice; ``dil_conv_k`` once with
dilation 2; ``none`` is zero; ``noise`` ignores its input and returns N(0, 1) values.
The sharpDARTS ops are configurations of :class:`SharpSepConv` (Hundt et al. 2019, Fig. 3).
Imported when a supernet or network is built (never by ``list spaces``: :mod:`.ops` reaches
it on first use); ``from .ops import SepConv`` works as before.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class ReLUConvBN(nn.Module):
    """ReLU -> conv -> BN: the cell preprocessing block."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class DilConv(nn.Module):
    """ReLU -> depthwise kxk (dilated) -> pointwise 1x1 -> BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 dilation: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class SepConv(nn.Module):
    """Two DilConv blocks with dilation 1; only the first one strides."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine).op,
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine).op,
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class SharpSepConv(nn.Module):
    """sharpDARTS's block (Hundt et al. 2019, Fig. 1 and 3): 2 separable convs, 2 bottlenecks.

    ReLU -> depthwise kxk on c_in (stride, dilation) -> 1x1 c_in->c_mid -> BN -> ReLU ->
    depthwise kxk on c_mid (stride 1, dilation 1) -> 1x1 c_mid->c_out -> BN.
    ``c_mid = int(c_out * c_mid_mult)`` unless a fixed ``c_mid`` is given (the "choke" ops
    fix it at 32 whatever the cell width, as Table 1 defines).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int = 1,
                 affine: bool = True, c_mid_mult: float = 1.0, c_mid: int | None = None):
        super().__init__()
        mid = c_mid if c_mid else int(c_out * c_mid_mult)
        if mid < 1:
            raise ValueError(f"SharpSepConv needs c_mid >= 1, got {mid}")
        self.c_mid = mid
        pad = dilation * (kernel - 1) // 2
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=pad, dilation=dilation,
                      groups=c_in, bias=False),
            nn.Conv2d(c_in, mid, 1, bias=False),
            nn.BatchNorm2d(mid, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(mid, mid, kernel, stride=1, padding=(kernel - 1) // 2, groups=mid,
                      bias=False),
            nn.Conv2d(mid, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


class Zero(nn.Module):
    """The ``none`` op. Mixed edges skip it (its output is zero); kept for discrete nets."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Noise(nn.Module):
    """RobustDARTS S4's ``noise`` op: fresh N(0, 1) values of the (strided) input's shape.

    The values are drawn into a channels_last buffer whatever the input's layout, so
    ``--memory-format`` does not change them (issue 17: it stays out of the run id): a draw
    follows memory order, and ``randn_like`` of an NCHW input would give other values at each
    position. channels_last is the default layout's, whose draws this keeps as they were."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if self.stride != 1:
            h, w = -(-h // self.stride), -(-w // self.stride)
        out = torch.empty((n, c, h, w), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        return out.normal_()


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset 1x1 stride-2 convs, concatenated, then BN."""

    def __init__(self, c_in: int, c_out: int, affine: bool = True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(x)
        a = self.conv_1(x)
        b = self.conv_2(x[:, :, 1:, 1:])
        if b.shape[-2:] != a.shape[-2:]:  # odd input sizes: pad the shifted branch back
            b = nn.functional.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


def pool_op(kind: str, c: int, stride: int, affine: bool, search: bool) -> nn.Module:
    pool: nn.Module
    if kind == "max":
        pool = nn.MaxPool2d(3, stride=stride, padding=1)
    else:
        pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if search:  # DARTS search model appends a non-affine BN to every pool
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False))
    return pool


__all__ = ["DilConv", "FactorizedReduce", "Identity", "Noise", "ReLUConvBN", "SepConv",
           "SharpSepConv", "Zero", "pool_op"]
