"""Candidate operations of DARTS-family cells: the table that names them (:data:`OPS`).

Each entry records whether the op has weights, which is what the papers' "parameter-free op
fraction" counts, and how to build its module. The modules themselves (and their semantics,
which follow quark0/darts and automl/RobustDARTS) are in :mod:`.op_modules`, imported on the
first build, so specs parse and ``nasbench-eval list spaces`` runs without torch;
``from .ops import SepConv`` still works (module ``__getattr__``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import unknown
from ...lazy_torch import LazyModule

if TYPE_CHECKING:
    from torch import nn

_m = LazyModule(f"{__package__}.op_modules")
"""The op modules, imported when the first op is built."""
_MODULES = ("ReLUConvBN", "DilConv", "SepConv", "SharpSepConv", "Identity", "Zero", "Noise",
            "FactorizedReduce")


OpFactory = Callable[[int, int, bool, bool], "nn.Module"]
"""(channels, stride, affine, search) -> module."""


@dataclass(frozen=True)
class OpSpec:
    name: str
    build: OpFactory
    parametric: bool
    """Whether the op has trainable weights; parameter-free ops are what collapse counts."""
    is_zero: bool = False
    """True only for ``none``: a mixed edge skips it and derivation never picks it."""


OPS: dict[str, OpSpec] = {
    spec.name: spec
    for spec in [
        OpSpec("none", lambda c, s, a, search: _m.Zero(s), parametric=False, is_zero=True),
        OpSpec("max_pool_3x3", lambda c, s, a, search: _m.pool_op("max", c, s, a, search), False),
        OpSpec("avg_pool_3x3", lambda c, s, a, search: _m.pool_op("avg", c, s, a, search), False),
        OpSpec("skip_connect",
               lambda c, s, a, search: _m.Identity() if s == 1 else _m.FactorizedReduce(c, c, a),
               parametric=False),
        OpSpec("sep_conv_3x3", lambda c, s, a, search: _m.SepConv(c, c, 3, s, 1, a), True),
        OpSpec("sep_conv_5x5", lambda c, s, a, search: _m.SepConv(c, c, 5, s, 2, a), True),
        OpSpec("sep_conv_7x7", lambda c, s, a, search: _m.SepConv(c, c, 7, s, 3, a), True),
        OpSpec("dil_conv_3x3", lambda c, s, a, search: _m.DilConv(c, c, 3, s, 2, 2, a), True),
        OpSpec("dil_conv_5x5", lambda c, s, a, search: _m.DilConv(c, c, 5, s, 4, 2, a), True),
        OpSpec("noise", lambda c, s, a, search: _m.Noise(s), parametric=False),
        # sharpDARTS (Hundt et al. 2019, Table 1): every "Conv" is a SharpSepConv config
        OpSpec("sharp_sep_conv_3x3",
               lambda c, s, a, search: _m.SharpSepConv(c, c, 3, s, 1, a, c_mid_mult=1), True),
        OpSpec("sharp_dil_conv_3x3",
               lambda c, s, a, search: _m.SharpSepConv(c, c, 3, s, 2, a, c_mid_mult=1), True),
        OpSpec("flood_conv_3x3",
               lambda c, s, a, search: _m.SharpSepConv(c, c, 3, s, 1, a, c_mid_mult=4), True),
        OpSpec("dil_flood_conv_3x3",
               lambda c, s, a, search: _m.SharpSepConv(c, c, 3, s, 2, a, c_mid_mult=4), True),
        OpSpec("choke_conv_3x3",
               lambda c, s, a, search: _m.SharpSepConv(c, c, 3, s, 1, a, c_mid=32), True),
        OpSpec("dil_choke_conv_3x3",
               lambda c, s, a, search: _m.SharpSepConv(c, c, 3, s, 2, a, c_mid=32), True),
    ]
}


def op_spec(name: str) -> OpSpec:
    try:
        return OPS[name]
    except KeyError:
        raise unknown("op", name, OPS) from None


def build_op(name: str, channels: int, stride: int, affine: bool = False,
             search: bool = True) -> nn.Module:
    """Instantiate a candidate op. Search supernets use ``affine=False`` BNs, as DARTS does."""
    return op_spec(name).build(channels, stride, affine, search)


def __getattr__(name: str) -> Any:
    """The op module classes (:mod:`.op_modules`) under their old address."""
    if name in _MODULES:
        return getattr(_m, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
