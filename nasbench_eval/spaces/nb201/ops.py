"""NAS-Bench-201's candidate ops and the residual block between its stages.

The convolutions are ReLU -> conv -> BN. In the search supernet BN has no affine parameters
(as the benchmark's search code); in the discrete network it has them. The benchmark's code
gives a convolution a bias exactly when its BN has no affine parameters; that bias is
cancelled by the BN's mean subtraction (train and eval mode), so the supernet here omits it:
same function, fewer weights (only the weight count of the supernet differs). The discrete
network (affine BN, no bias) has the benchmark's parameter count exactly
(``tests/test_nb201.py``).
"""
from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from ...errors import NasbenchEvalError
from .genotype import NB201_OPS


class ReLUConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, affine: bool):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine))

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Identity(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x


def build_op(name: str, channels: int, affine: bool) -> nn.Module | None:
    """The module of candidate ``name`` (stride 1, ``channels`` in and out); ``none`` has
    none (its output is zero: it is skipped, not computed)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise NasbenchEvalError(f"unknown NAS-Bench-201 op {name!r}; valid: {', '.join(NB201_OPS)}")


class ResNetBlock(nn.Module):
    """The basic residual block between stages: two ReLU-conv3x3-BN (the first with stride
    2) plus a shortcut of 2x2 average pooling and a 1x1 convolution; halves the resolution,
    changes the channels ``c_in`` -> ``c_out``. Affine BN in both networks."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, affine=True)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, stride=2),
                                      nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


def stage_sizes(layers: int) -> tuple[int, int, int]:
    """Cells per stage for ``layers`` cells in all: as even as possible, earlier stages take
    the remainder (15 -> 5, 5, 5, the benchmark's N = 5; 8 -> 3, 3, 2)."""
    if layers < 3:
        raise NasbenchEvalError(f"a NAS-Bench-201 network has 3 stages of cells: --layers "
                                f"(cells in all) must be >= 3, got {layers}; the benchmark "
                                f"uses 15 (N = 5 per stage)")
    base, extra = divmod(layers, 3)
    return tuple(base + (i < extra) for i in range(3))  # type: ignore[return-value]


def build_skeleton(net: nn.Module, make_cell: Callable[[int], nn.Module], channels: int,
                   layers: int, num_classes: int, in_channels: int) -> None:
    """Give ``net`` the macro structure both networks share: ``stem`` (3x3 conv + BN),
    ``layers`` (three stages of cells, a :class:`ResNetBlock` doubling the channels between
    them; ``is_cell`` marks the cells), ``lastact`` (BN + ReLU), global average pooling and
    the linear ``classifier``. ``make_cell(c)`` builds one cell of ``c`` channels."""
    if channels < 1:
        raise NasbenchEvalError(f"channels must be >= 1, got {channels}")
    net.stem = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
                             nn.BatchNorm2d(channels))
    net.layers = nn.ModuleList()
    net.is_cell = []
    c = channels
    for stage, n in enumerate(stage_sizes(layers)):
        if stage > 0:
            net.layers.append(ResNetBlock(c, 2 * c))
            net.is_cell.append(False)
            c *= 2
        for _ in range(n):
            net.layers.append(make_cell(c))
            net.is_cell.append(True)
    net.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
    net.pool = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Linear(c, num_classes)


def head(net: nn.Module, h: Tensor) -> Tensor:
    """BN + ReLU, global pooling and the classifier of a :func:`build_skeleton` network."""
    return net.classifier(net.pool(net.lastact(h)).flatten(1))


__all__ = ["Identity", "ReLUConvBN", "ResNetBlock", "build_skeleton", "head", "build_op", "stage_sizes"]
