"""Source-fused execution of a NAS-Bench-201 search cell: the arithmetic of the per-edge loop
in :class:`~nasbench_eval.spaces.nb201.supernet.SearchCell`, in fewer and larger kernels.

Why: at search sizes a step's time is mostly the fixed cost of many small kernels (the DARTS
measurement in docs/speed.md). In an NAS-Bench-201 cell node i feeds ``nodes - 1 - i`` edges
and every edge runs the same candidates on it, so grouping work by source node turns m
edges' kernels into one:

* the ReLU that opens both convolution candidates runs once per node;
* the 1x1 and 3x3 convolutions of all m edges are *one* convolution with their weights
  stacked along the output channels (a dense conv: every edge reads the same C input
  channels), the 1x1 kernels zero-padded to 3x3 (the padded taps add exact zeros; their
  gradients are dropped by the pad's backward);
* their 2m BatchNorms (no affine parameters at search time) are one BatchNorm over 2m x C
  channels: batch statistics are per channel, so this is exact; the running buffers are
  concatenated and written back once per cell (as the DARTS fused cell); in evaluation the
  BN is folded into the convolution (weight x scale, bias shift);
* ``avg_pool_3x3`` (no BN here) and ``skip_connect`` are computed once per node and shared;
* the weighted sum of the m edges is one multiply and one sum over the (edge, conv) grid plus
  one multiply-add per shared candidate, on an (N, m, C, H, W) view; each edge's slice is
  then added to its target node, in the per-edge loop's order.

Parameters and buffers stay in the per-edge modules (state_dict, optimizers,
``functional_call`` for second-order DARTS see the same tensors); the stacked weights are
assembled at every forward by differentiable pad/cat ops, so gradients reach the same
leaves and double backprop works. Candidates this module does not recognise, and candidates
with hooks or parametrizations, run through their own modules inside the same mixing. The
plan is built at the cell's first fused forward and rebuilt when a candidate gains or loses a
hook or parametrization. The cell uses the per-edge loop while a method's edge forward is set
(GDAS's sampled paths, partial channels, ...), while drop-path is active in training, and while
a mixed edge, the edge list or every module (a global hook) has a hook: the rules of
:mod:`nasbench_eval.spaces.darts.fused_cell`, whose BN concatenation, write-back and hook
bookkeeping are reused here.

The result equals the per-edge loop up to floating-point summation order
(tests/test_nb201_fused.py checks outputs, gradients, Hessian-vector products and BN
buffers in float64). Whether it is faster: docs/nb201.md, "Fused execution".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# shared machinery of the DARTS fused cell (one place for BN concatenation and hook rules)
from ..darts.fused_cell import CandidateWatch
from ..darts.fused_cell import FusedCell as _DartsFusedCell
from ..darts.fused_cell import _channels_last, _eval_bn_affine, _global_hooks
from ..darts.fused_cell import _grad_like_forward, _hooked, _plain, _write_back
from .ops import Identity, ReLUConvBN

if TYPE_CHECKING:
    from .supernet import SearchCell

_bn = _DartsFusedCell._bn


@dataclass
class _Source:
    """The work of one source node: every candidate of its ``edges`` (in edge order)."""

    node: int
    edges: tuple[int, ...]
    targets: tuple[int, ...]  # the node each edge feeds
    # the convolution candidates, edge-major ((edge, column, conv, bn) in edge, column order)
    conv: list[tuple[int, int, nn.Conv2d, nn.BatchNorm2d]] = field(default_factory=list)
    conv_grid: int = 0  # K > 0: every edge has exactly K conv candidates, edge-major
    kernel: int = 0  # the stacked convolution's kernel size (the largest)
    skip: list[tuple[int, int]] = field(default_factory=list)  # (edge, column)
    pool: list[tuple[int, int]] = field(default_factory=list)
    pool_module: nn.Module | None = None
    modules: list[tuple[int, int, nn.Module]] = field(default_factory=list)  # run per edge
    index: tuple[Tensor, Tensor] | None = None  # (rows, cols) into w, in the order above
    sizes: list[int] = field(default_factory=list)


def usable(cell: SearchCell) -> bool:
    """Whether the fused forward may replace ``cell``'s per-edge loop: no method edge forward
    and no hook on the mixed edges, their list or every module (the per-edge loop would call
    them; the candidates' own hooks are honoured per candidate)."""
    if cell.edge_forward is not None:
        return False
    return not (_global_hooks() or _hooked(cell.edges) or any(_hooked(e) for e in cell.edges))


def _conv_of(op: nn.Module) -> tuple[nn.Conv2d, nn.BatchNorm2d] | None:
    """The (conv, BN) of a plain stride-1 "same" ReLU-conv-BN candidate, else None."""
    if type(op) is not ReLUConvBN or not _plain(op):
        return None
    seq = op.op
    if not (len(seq) == 3 and type(seq[0]) is nn.ReLU and type(seq[1]) is nn.Conv2d
            and type(seq[2]) is nn.BatchNorm2d and seq[2].track_running_stats):
        return None
    conv = seq[1]
    k = conv.kernel_size
    if (conv.bias is not None or conv.groups != 1 or conv.stride != (1, 1)
            or conv.dilation != (1, 1) or k[0] != k[1] or k[0] % 2 == 0
            or conv.padding != (k[0] // 2, k[0] // 2) or conv.padding_mode != "zeros"
            or conv.in_channels != conv.out_channels):
        return None
    return conv, seq[2]


def _pool_key(op: nn.Module) -> tuple | None:
    """What makes two pools compute the same function (one runs for all), or None."""
    if type(op) is not nn.AvgPool2d or not _plain(op):
        return None
    return (op.kernel_size, op.stride, op.padding, op.ceil_mode, op.count_include_pad,
            op.divisor_override)


class _Layout:
    """Views of (N, G x C, H, W) activations as blocks (edge, candidate, channel) that are
    dense in memory, for the weighted sums: NCHW as (N, *groups, C, H, W), channels_last as
    (N, H, W, *groups, C). (Reducing over a group dim of a channels_last tensor viewed as
    NCHW walks memory with large strides; measured 3-4x slower than in this order.)"""

    def __init__(self, like: Tensor):
        self.cl = _channels_last(like)
        self.c = like.shape[1]
        self.kind_dim = 4 if self.cl else 2  # the K dim of blocks(y, m, K)

    def blocks(self, y: Tensor, *groups: int) -> Tensor:
        n, _, hh, ww = y.shape
        if self.cl:
            return y.permute(0, 2, 3, 1).reshape(n, hh, ww, *groups, self.c)
        return y.reshape(n, *groups, self.c, hh, ww)

    def weights(self, wk: Tensor, *groups: int) -> Tensor:
        """``wk`` (one weight per block) shaped to broadcast against ``blocks(.., *groups)``."""
        return wk.view(*groups, 1) if self.cl else wk.view(1, *groups, 1, 1, 1)

    def edge(self, acc: Tensor, i: int) -> Tensor:
        """Edge ``i`` of ``blocks(.., m)`` as an (N, C, H, W) tensor."""
        return acc[:, :, :, i].permute(0, 3, 1, 2) if self.cl else acc[:, i]

    def member(self, y: Tensor, j: int) -> Tensor:
        """Channels ``j * C .. (j + 1) * C`` of ``y``."""
        return y[:, j * self.c:(j + 1) * self.c]


class FusedNb201Cell:
    """The fused forward of one :class:`SearchCell` (built once, from its modules)."""

    def __init__(self, cell: SearchCell):
        self.cell = cell
        self.watch = CandidateWatch(cell)
        self.nodes = cell.nodes
        self.sources = [self._plan(cell, n) for n in range(cell.nodes - 1)]
        self.device: torch.device | None = None

    def current(self) -> bool:
        """Whether the plan still holds (:meth:`CandidateWatch.current`)."""
        return self.watch.current()

    @staticmethod
    def _plan(cell: SearchCell, node: int) -> _Source:
        pairs = [(e, t) for e, (s, t) in enumerate(cell.edge_index) if s == node]
        src = _Source(node, tuple(e for e, _ in pairs), tuple(t for _, t in pairs))
        pool_keys = set()
        per_edge_convs = []
        for e in src.edges:
            edge = cell.edges[e]
            convs = 0
            for col, op in zip(edge.columns, edge.ops):
                cb = _conv_of(op)
                if cb is not None:
                    src.conv.append((e, col, *cb))
                    convs += 1
                elif type(op) is Identity and _plain(op):
                    src.skip.append((e, col))
                elif _pool_key(op) is not None:
                    src.pool.append((e, col))
                    pool_keys.add(_pool_key(op))
                    src.pool_module = src.pool_module or op
                else:
                    src.modules.append((e, col, op))
            per_edge_convs.append(convs)
        if len(pool_keys) > 1:  # pools that differ: each runs through its own module
            src.modules += [(e, c, cell.edges[e].ops[cell.edges[e].columns.index(c)])
                            for e, c in src.pool]
            src.pool, src.pool_module = [], None
        widths = {conv.in_channels for _, _, conv, _ in src.conv}
        if len(widths) > 1:  # cannot stack: run them per edge
            src.modules += [(e, c, cell.edges[e].ops[cell.edges[e].columns.index(c)])
                            for e, c, _, _ in src.conv]
            src.conv = []
        if src.conv:
            src.kernel = max(conv.kernel_size[0] for _, _, conv, _ in src.conv)
            k = per_edge_convs[0]
            src.conv_grid = k if k and all(c == k for c in per_edge_convs) else 0
        return src

    def _to(self, device: torch.device) -> None:
        for src in self.sources:
            pairs = ([(e, c) for e, c, _, _ in src.conv] + src.skip + src.pool
                     + [(e, c) for e, c, _ in src.modules])
            src.index = (torch.tensor([e for e, _ in pairs], dtype=torch.long, device=device),
                         torch.tensor([c for _, c in pairs], dtype=torch.long, device=device))
            src.sizes = [len(src.conv), len(src.skip), len(src.pool), len(src.modules)]
        self.device = device

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.device != w.device:
            self._to(w.device)
        states = [x]
        parts: dict[int, list[Tensor]] = {}
        pending: list = []
        for src in self.sources:
            while len(states) <= src.node:  # every edge into it has been added
                states.append(self._node(parts.pop(len(states), []), x))
            self._source(src, states[src.node], w, parts, pending)
        while len(states) < self.nodes:
            states.append(self._node(parts.pop(len(states), []), x))
        if pending:
            _write_back(pending)
        return states[-1]

    @staticmethod
    def _node(xs: list[Tensor], like: Tensor) -> Tensor:
        """The sum of ``xs`` (zeros like ``like`` for none), in ``like``'s memory format (the
        per-edge slices of the mixing are strided views)."""
        if not xs:  # every edge into it is `none` only
            return torch.zeros_like(like)
        total = xs[0]
        for y in xs[1:]:
            total = total + y
        if _channels_last(like) and not total.is_contiguous(memory_format=torch.channels_last):
            total = total.contiguous(memory_format=torch.channels_last)
        return total

    def _source(self, src: _Source, h: Tensor, w: Tensor, parts: dict[int, list[Tensor]],
                pending: list) -> None:
        m = len(src.edges)
        slot = {e: i for i, e in enumerate(src.edges)}
        w_conv, w_skip, w_pool, w_mod = w[src.index].split(src.sizes)
        lay = _Layout(h)
        acc: Tensor | None = None  # lay.blocks(.., m): the groups that cover every edge
        extra: dict[int, list[Tensor]] = {}  # per-edge terms of the others

        def add_shared(y: Tensor, members: list[tuple[int, int]], wk: Tensor) -> None:
            nonlocal acc
            wk = wk.to(y.dtype)
            if len(members) == m:  # one multiply-add over the m edges
                yb, s = lay.blocks(y, 1), lay.weights(wk, m)
                acc = yb * s if acc is None else torch.addcmul(acc, yb, s)
            else:
                for (e, _), wi in zip(members, wk):
                    extra.setdefault(e, []).append(wi * y)

        if src.conv:
            y = _grad_like_forward(self._conv(src, F.relu(h), pending))
            wc = w_conv.to(y.dtype)
            if src.conv_grid:  # every edge's K conv candidates, weighted and summed
                k = src.conv_grid
                yk = lay.blocks(y, m, k) * lay.weights(wc, m, k)
                acc = yk.sum(lay.kind_dim) if acc is None else acc + yk.sum(lay.kind_dim)
            else:
                for j, (e, _, _, _) in enumerate(src.conv):
                    extra.setdefault(e, []).append(wc[j] * lay.member(y, j))
        if src.skip:
            add_shared(h, src.skip, w_skip)
        if src.pool:
            add_shared(src.pool_module(h), src.pool, w_pool)
        for (e, _, op), wi in zip(src.modules, w_mod):
            y = op(h)
            extra.setdefault(e, []).append(wi.to(y.dtype) * y)
        for e, t in zip(src.edges, src.targets):
            terms = ([lay.edge(acc, slot[e])] if acc is not None else []) + extra.get(e, [])
            if terms:
                parts.setdefault(t, []).append(self._node(terms, h))

    @staticmethod
    def _conv(src: _Source, r: Tensor, pending: list) -> Tensor:
        """Every conv candidate of ``src`` on the ReLU output ``r``: one conv of M x C output
        channels (kernels zero-padded to the largest), then one BN over them (folded into the
        conv in evaluation)."""
        kmax = src.kernel
        ws = []
        for _, _, conv, _ in src.conv:
            p = (kmax - conv.kernel_size[0]) // 2
            ws.append(F.pad(conv.weight, (p, p, p, p)) if p else conv.weight)
        weight = torch.cat(ws) if len(ws) > 1 else ws[0]
        bns = [bn for _, _, _, bn in src.conv]
        folded = _eval_bn_affine(bns, weight.dtype)
        if folded is not None:  # evaluation: BN(z) = z * scale + shift, into the conv
            scale, shift = folded
            return F.conv2d(r, weight * scale.view(-1, 1, 1, 1), shift, 1, kmax // 2)
        return _bn(F.conv2d(r, weight, None, 1, kmax // 2), bns, pending)


__all__ = ["FusedNb201Cell", "usable"]
