"""The source-fused forward of one DARTS search cell for K packed seeds.

Why: packing alone (:mod:`.net`) makes every kernel K times wider but keeps one kernel per
edge and candidate, so a packed step still launches ~3.5x the kernels of one fused
single-seed step (a cell's 14 edges vs its 4 sources). This module runs the grouping of
:class:`~nasbench_eval.spaces.darts.fused_cell.FusedCell` (same plan: the edges leaving a
source run each candidate as one kernel) on the packed tensors, so a cell's kernels are
those of one fused seed, each K times wider still:

* channels are ordered (edge, seed, channel) inside a group: the source's packed ReLU output
  ``(N, K*C, H, W)`` repeated once per edge, the edges' packed weights concatenated (each is
  already (seed, channel)); a depthwise conv stays depthwise, a 1x1 conv gets ``m*K``
  groups, a BN runs over ``m*K*C`` channels on the concatenated packed running buffers,
  written back after the cell;
* a pool runs once per source; in training its m non-affine BNs normalise the same input,
  so one BN serves every edge and each edge's packed running statistics move by the same
  per-channel batch statistics (as :class:`FusedCell`);
* the m stride-2 skips (FactorizedReduce) of a source are two convs with ``K`` groups whose
  weights are stacked (seed, edge, channel), reordered to (edge, seed, channel) once;
* mixing: each seed's weight of each edge, one multiply-add per group on an
  ``(N, m, K, C, H, W)`` view.

Candidates the plan leaves per edge ("module" groups) run through
:meth:`PackedSupernet._op <nasbench_eval.packing.net.PackedSupernet._op>` as before. Per
seed the arithmetic is the packed per-edge loop's up to summation order
(tests/test_packing.py compares the two in float64, outputs, gradients and BN buffers).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..spaces.darts.dwconv import depthwise_conv2d
from ..spaces.darts.fused_cell import FusedCell, _Group, _Source, repeat_channels
from ..spaces.darts.fused_cell import _grad_like_forward as grad_like_forward
from ..spaces.darts.supernet import SearchCell

if TYPE_CHECKING:
    from .net import PackedSupernet


@dataclass
class _BN:
    """The packed state names of the m BatchNorms of one group stage, in edge order."""

    prefixes: tuple[str, ...]
    affine: bool
    eps: float
    momentum: float


def _bn_of(names: dict[int, str], bns: list[nn.BatchNorm2d]) -> _BN:
    b0 = bns[0]
    if any((b.affine, b.eps, b.momentum) != (b0.affine, b0.eps, b0.momentum) for b in bns):
        raise ValueError("BatchNorm settings differ within a fused group")  # never in DARTS
    return _BN(tuple(names[id(b)] for b in bns), b0.affine, b0.eps, float(b0.momentum))


class PackedCell:
    """One template :class:`SearchCell` run source-fused on packed tensors (built once per
    :class:`PackedSupernet`, from the template's modules; names into its state dicts)."""

    def __init__(self, net: PackedSupernet, cell: SearchCell, prefix: str):
        self.net = net
        self.cell = cell
        self.prefix = prefix
        self.plan = FusedCell(cell)
        names = {id(m): f"{prefix}.{n}" for n, m in cell.named_modules() if n}
        self.names = names
        self.bns: dict[int, list[_BN]] = {}  # id(group) -> its stages' BNs (conv), or [pool BN]
        for src in self.plan.sources:
            for g in src.groups:
                if g.kind == "conv":
                    self.bns[id(g)] = [_bn_of(names, st.bn) for st in g.stages]
                elif g.kind == "pool":
                    self.bns[id(g)] = [_bn_of(names, g.bns)]
                elif g.kind == "reduce":
                    self.bns[id(g)] = [_bn_of(names, [f.bn for f in g.modules])]
        self.index: dict[torch.device, list[tuple[Tensor, Tensor]]] = {}

    # ------------------------------------------------------------------ state access
    def _w(self, modules: list[nn.Module]) -> Tensor:
        """The m modules' packed weights concatenated along dim 0 (edge, seed, ...)."""
        p = self.net._p
        ws = [p[f"{self.names[id(m)]}.weight"] for m in modules]
        return ws[0] if len(ws) == 1 else torch.cat(ws)

    def _bn(self, x: Tensor, bn: _BN, pending: list) -> Tensor:
        """The m BNs of ``bn`` over ``x`` ``(N, m*K*C, H, W)`` as one BN on the concatenated
        packed buffers; in training their new running statistics are written back after the
        cell (``pending``)."""
        b, p = self.net._b, self.net._p
        train = self.net.training
        pre = bn.prefixes
        if len(pre) == 1:
            rm, rv = b[f"{pre[0]}.running_mean"], b[f"{pre[0]}.running_var"]
        else:
            rm = torch.cat([b[f"{n}.running_mean"] for n in pre])
            rv = torch.cat([b[f"{n}.running_var"] for n in pre])
        weight = bias = None
        if bn.affine:
            weight = torch.cat([p[f"{n}.weight"] for n in pre])
            bias = torch.cat([p[f"{n}.bias"] for n in pre])
        y = F.batch_norm(x, rm, rv, weight, bias, train, bn.momentum if train else 0.0, bn.eps)
        if train:  # one BN updated its own buffers in place; m BNs updated the copies
            pending.append(("copy" if len(pre) > 1 else "own", pre, rm, rv, bn.momentum))
        return y

    def _pool_bn(self, p: Tensor, bn: _BN, pending: list) -> tuple[Tensor, bool]:
        """The m non-affine BNs after one pool in training: one BN over ``K*C`` channels
        (shared, True) and every edge's running statistics moved by its batch statistics.
        Otherwise the pool output repeated m times through one concatenated BN."""
        m = len(bn.prefixes)
        if m == 1 or not self.net.training or bn.affine:
            return self._bn(repeat_channels([(p, m)]), bn, pending), False
        y = F.batch_norm(p, None, None, None, None, True, 0.0, bn.eps)
        with torch.no_grad():
            var, mean = torch.var_mean(p.to(self.net._b[f"{bn.prefixes[0]}.running_mean"].dtype),
                                       (0, 2, 3), correction=1)
        pending.append(("lerp", bn.prefixes, mean, var, bn.momentum))
        return y, True

    # ------------------------------------------------------------------ kernels
    def _conv(self, g: _Group, x: Tensor, pending: list) -> Tensor:
        """``x``: the sources' ReLU outputs repeated once per edge, (edge, seed, channel)."""
        groups = len(g.edges) * self.net.k
        y = x
        for i, (st, bn) in enumerate(zip(g.stages, self.bns[id(g)])):
            d = st.dw[0]
            if i:
                y = F.relu(y)
            y = depthwise_conv2d(y, self._w(st.dw), d.stride, d.padding, d.dilation)
            y = F.conv2d(y, self._w(st.pw), None, 1, 0, 1, groups)
            y = self._bn(y, bn, pending)
        return y

    def _reduce(self, g: _Group, r: Tensor, pending: list) -> Tensor:
        """m FactorizedReduce on the same packed ReLU output ``r``: per conv one conv with K
        groups whose output channels are (seed, edge, channel), then one reorder to (edge,
        seed, [conv_1, conv_2] channels) and the m BNs as one."""
        frs = g.modules
        m, k = len(frs), self.net.k
        p = self.net._p

        def stacked(attr: str) -> Tensor:
            ws = [p[f"{self.names[id(f)]}.{attr}.weight"] for f in frs]
            w0 = ws[0]
            return torch.stack([w.unflatten(0, (k, -1)) for w in ws], 1).flatten(0, 2) \
                if m > 1 else w0

        a = F.conv2d(r, stacked("conv_1"), None, 2, 0, 1, k)
        b = F.conv2d(r[:, :, 1:, 1:], stacked("conv_2"), None, 2, 0, 1, k)
        if b.shape[-2:] != a.shape[-2:]:  # odd input sizes, as FactorizedReduce pads
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        a, b = grad_like_forward(a), grad_like_forward(b)
        n, kh, h, w = a.shape
        half = kh // (k * m)
        if self.net.memory_format == torch.channels_last:  # reorder in NHWC order
            y = torch.cat([a.permute(0, 2, 3, 1).reshape(n, h, w, k, m, half),
                           b.permute(0, 2, 3, 1).reshape(n, h, w, k, m, half)], 5)
            y = y.transpose(3, 4).reshape(n, h, w, 2 * kh).permute(0, 3, 1, 2)
        else:
            y = torch.cat([a.view(n, k, m, half, h, w), b.view(n, k, m, half, h, w)], 3)
            y = y.transpose(1, 2).reshape(n, 2 * kh, h, w)
        return self._bn(y, self.bns[id(g)][0], pending)

    # ------------------------------------------------------------------ forward
    def forward(self, s0: Tensor, s1: Tensor, w: Tensor) -> Tensor:
        """The cell's packed output ``(N, K * nodes * C, H, W)`` (seed, node, channel) from
        the packed inputs and the mixing weights ``w`` ``(K, edges, ops)``."""
        net, cell, plan = self.net, self.cell, self.plan
        if w.device not in self.index:
            self.index[w.device] = [
                (torch.tensor([e for g in src.groups for e in g.edges], device=w.device),
                 torch.tensor([c for g in src.groups for c in g.cols], device=w.device))
                for src in plan.sources]
        states = [net._op(cell.pre0, f"{self.prefix}.pre0", s0),
                  net._op(cell.pre1, f"{self.prefix}.pre1", s1)]
        parts: dict[int, list[Tensor]] = {}
        pending: list = []
        last = 2 + plan.nodes
        for src, index in zip(plan.sources, self.index[w.device]):
            while len(states) <= max(src.states):  # every edge into it has been added
                states.append(_sum(parts.pop(len(states))))
            self._source(src, index, states, w, parts, pending)
        while len(states) < last:
            states.append(_sum(parts.pop(len(states))))
        net._shared.clear()
        if pending:
            self._write_back(pending)
        return self._output(states[2:])

    def _source(self, src: _Source, index: tuple[Tensor, Tensor], states: list[Tensor],
                w: Tensor, parts: dict[int, list[Tensor]], pending: list) -> None:
        k = self.net.k
        relu: dict[int, Tensor] = {}
        repeated: dict[tuple[tuple[int, int], ...], Tensor] = {}
        accs: dict[tuple[int, ...], Tensor] = {}

        def relu_of(state: int) -> Tensor:  # opens every convolution candidate: once per state
            if state not in relu:
                relu[state] = F.relu(states[state])
            return relu[state]

        # every group's (edge, seed) mixing weights in one gather: (total edges, K)
        weights = w[:, index[0], index[1]].t().split([len(g.edges) for g in src.groups])
        for i, g in enumerate(src.groups):
            m = len(g.edges)
            h = states[g.state] if g.kind != "conv" else None
            if g.kind == "identity":
                y, own = grad_like_forward(h), 1
            elif g.kind == "pool":
                y, shared = self._pool_bn(g.pool(h), self.bns[id(g)][0], pending)
                y, own = grad_like_forward(y), (1 if shared else m)
            elif g.kind == "conv":
                if g.inputs not in repeated:
                    repeated[g.inputs] = repeat_channels([(relu_of(st), c) for st, c in g.inputs])
                y, own = grad_like_forward(self._conv(g, repeated[g.inputs], pending)), m
            elif g.kind == "reduce":
                y, own = grad_like_forward(self._reduce(g, relu_of(g.state), pending)), m
            else:  # a candidate the plan runs per edge: the packed module path
                name = f"{self.names[id(g.module)]}"
                y, own = grad_like_forward(self.net._op(g.module, name, h)), 1
            n, ch, hh, ww = y.shape
            y = y.view(n, own, k, ch // (own * k), hh, ww)
            s = weights[i].to(y.dtype).view(1, m, k, 1, 1, 1)
            acc = accs.get(g.edges)
            accs[g.edges] = y * s if acc is None else torch.addcmul(acc, y, s)
        for edges, acc in accs.items():
            for t, e in enumerate(edges):
                parts.setdefault(self.plan.target[e], []).append(acc[:, t].flatten(1, 2))

    def _write_back(self, pending: list) -> None:
        """After the cell: the fused BNs' running statistics into every edge's packed
        buffers, and each BN's packed ``num_batches_tracked`` advanced (as per-edge BNs)."""
        b = self.net._b
        dst: list[Tensor] = []
        val: list[Tensor] = []
        counters: list[Tensor] = []
        lerp: dict[float, tuple[list[Tensor], list[Tensor]]] = {}
        for kind, pre, mean, var, momentum in pending:
            running = ([b[f"{n}.running_mean"] for n in pre]
                       + [b[f"{n}.running_var"] for n in pre])
            if kind == "lerp":  # mean, var: the batch statistics every edge's BN saw
                d, v = lerp.setdefault(momentum, ([], []))
                d += running
                v += [mean] * len(pre) + [var] * len(pre)
            elif kind == "copy":  # mean, var: the concatenated buffers F.batch_norm updated
                c = mean.shape[0] // len(pre)
                dst += running
                val += list(mean.split(c)) + list(var.split(c))
            counters += [b[f"{n}.num_batches_tracked"] for n in pre]
        with torch.no_grad():
            if dst:
                torch._foreach_copy_(dst, val)
            for momentum, (d, v) in lerp.items():
                torch._foreach_lerp_(d, v, momentum)
            torch._foreach_add_(counters, 1)

    def _output(self, nodes: list[Tensor]) -> Tensor:
        """The intermediate nodes concatenated per seed: channels (seed, node, channel)."""
        k = self.net.k
        n, kc, hh, ww = nodes[0].shape
        c = kc // k
        if self.net.memory_format == torch.channels_last:  # one copy, built in NHWC order
            y = torch.stack([s.permute(0, 2, 3, 1).reshape(n, hh, ww, k, c) for s in nodes], 4)
            return y.reshape(n, hh, ww, k * len(nodes) * c).permute(0, 3, 1, 2)
        y = torch.stack([s.reshape(n, k, c, hh, ww) for s in nodes], 2)
        return y.reshape(n, k * len(nodes) * c, hh, ww)


def _sum(xs: list[Tensor]) -> Tensor:
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    return total
