"""DARTS-cell supernet: a stack of normal and reduction cells whose 14 edges mix candidates.

The architecture weights are an argument of :meth:`DartsSupernet.forward`, not state of the
model: a method computes them (softmax, perturbed softmax, Max-W, fixed, one-hot) and passes
the tensors in. That keeps the model free of method branches and the weights differentiable
or capturable as the method needs.

Methods reach the supernet only through the seam of :mod:`.supernet`:
:meth:`DartsSupernet.candidates` (every candidate module, e.g. MSR's convs),
``classifier``, :meth:`DartsSupernet.set_edge_forward` (a custom computation of every mixed
edge: sampled paths, partial channels; the fused cells step aside while one is set),
:meth:`DartsSupernet.set_drop_path` and :meth:`DartsSupernet.set_fused_edges` (the execution
layer's switch for the fused cells). Drop-path (ScheduledDropPath, used by R-DARTS(DP)) is
off unless a method sets a probability > 0; it acts in train mode only, with torch's global
RNG. Its scope says what is dropped: ``"op"`` each non-identity candidate's output (the
convention of DARTS's evaluation network, identity ops are never dropped) or ``"edge"`` the
whole mixed output of an edge, identity included (RobustDARTS's search model).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from .fused_cell import FusedCell
from .fused_cell import usable as fused_cell_usable
from .ops import OPS, FactorizedReduce, Identity, ReLUConvBN, build_op
from .spec import SearchSpace
from ..supernet import (Candidate, EdgeCall, EdgeForward, SupernetBase, SupernetSeamError,
                        drop_path, mix_candidates, partial_channel_edge)

DROP_PATH_SCOPES = ("op", "edge")


class MixedEdge(nn.Module):
    """All candidates of one edge; returns their sum weighted by one row of weights.

    ``none`` candidates are not instantiated: their output is zero whatever their weight,
    so they cost nothing here (their weight still enters the softmax of the method).
    With partial channels (``partial`` = k > 1, :meth:`set_partial`) the candidates see the
    first 1/k of the channels and :meth:`wrap` adds the bypass and the shuffle.
    """

    def __init__(self, op_names: tuple[str, ...], channels: int, stride: int):
        super().__init__()
        self.op_names = op_names
        self.channels, self.stride = channels, stride
        self.columns = [k for k, name in enumerate(op_names) if not OPS[name].is_zero]
        self.ops = nn.ModuleList(build_op(op_names[k], channels, stride) for k in self.columns)
        self.partial = 1

    def set_partial(self, k: int) -> None:
        """Rebuild the candidates on ``channels // k`` channels (fresh parameters)."""
        self.partial = k
        self.ops = nn.ModuleList(build_op(self.op_names[j], self.channels // k, self.stride)
                                 for j in self.columns)

    def mix(self, x: Tensor, w: Tensor, drop_prob: float = 0.0) -> Tensor:
        """sum_k w[k] * op_k(x); ``drop_prob`` > 0 (train mode only): drop-path on every
        non-identity candidate."""
        drop = drop_prob if self.training else 0.0
        out = mix_candidates(x, w, self.columns, self.ops, drop, Identity)
        return out  # type: ignore[return-value]  # a DARTS edge has a candidate module

    def wrap(self, x: Tensor, w: Tensor, inner) -> Tensor:
        """``inner`` (the candidates' computation) on the edge's input: directly, or under
        partial channels on the first 1/k of the channels, concatenated with the bypass (the
        rest, max-pooled 2x2 on a strided edge, times the row sum of ``w``) and shuffled."""
        return partial_channel_edge(x, w, self.partial, self.stride, inner)

    def forward(self, x: Tensor, w: Tensor, drop_prob: float = 0.0) -> Tensor:
        if self.partial == 1:
            return self.mix(x, w, drop_prob)
        return self.wrap(x, w, lambda h: self.mix(h, w, drop_prob))


class SearchCell(nn.Module):
    def __init__(self, space: SearchSpace, cell_type: str, c_pp: int, c_p: int, c: int,
                 reduction_prev: bool):
        super().__init__()
        self.cell_type = cell_type
        self.reduction = cell_type == "reduce"
        self.nodes = space.nodes
        self.pre0 = (FactorizedReduce(c_pp, c, affine=False) if reduction_prev
                     else ReLUConvBN(c_pp, c, 1, 1, 0, affine=False))
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            MixedEdge(ops, c, 2 if self.reduction and src < 2 else 1)
            for ops, (src, _) in zip(space.edge_ops[cell_type], space.edges)
        )
        self.out_channels = c * space.nodes
        self._fused: FusedCell | None = None
        self.index = 0
        """Position of this cell in its supernet (set by :class:`DartsSupernet`)."""
        self.edge_forward: EdgeForward | None = None
        """A method's computation of every mixed edge (:meth:`DartsSupernet.set_edge_forward`);
        None: each edge's own weighted sum (and the fused path where enabled)."""

    def forward(self, s0: Tensor, s1: Tensor, w: Tensor, drop_prob: float = 0.0,
                drop_scope: str = "op", fused: bool = False) -> Tensor:
        drop = drop_prob > 0.0 and self.training
        # drop-path draws per candidate: the per-edge loop keeps its RNG order
        if fused and not drop and self.edges[0].partial == 1 and fused_cell_usable(self):
            plan = self._fused
            if plan is None or not plan.current():
                plan = self._fused = FusedCell(self)
            return plan.forward(s0, s1, w)
        op_prob = drop_prob if drop and drop_scope == "op" else 0.0
        edge_drop = drop and drop_scope == "edge"
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(self.nodes):
            total = None
            for j, h in enumerate(states):
                y = self._edge(e + j, h, w[e + j], op_prob)
                if edge_drop:
                    y = drop_path(y, drop_prob)
                total = y if total is None else total + y
            e += len(states)
            states.append(total)
        return torch.cat(states[2:], dim=1)

    def _edge(self, e: int, x: Tensor, w: Tensor, op_prob: float) -> Tensor:
        """Mixed edge ``e`` on ``x``: its own forward, or the method's edge forward."""
        edge = self.edges[e]
        if self.edge_forward is None:
            return edge(x, w, op_prob)
        call = EdgeCall(self.index, self.cell_type, e, tuple(edge.op_names),
                        tuple(edge.columns), tuple(edge.ops),
                        lambda x_, w_: edge.mix(x_, w_, op_prob), edge.stride)
        fn = self.edge_forward
        return edge.wrap(x, w, lambda h: fn(call, h, w))


class DartsSupernet(SupernetBase):
    """Stem, ``layers`` cells (reductions at 1/3 and 2/3 depth), global pool, classifier."""

    def __init__(self, space: SearchSpace, channels: int = 16, layers: int = 8,
                 num_classes: int = 10, in_channels: int = 3, stem_multiplier: int = 3):
        super().__init__()
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if channels < 2 or channels % 2:
            raise ValueError(f"channels must be an even number >= 2, got {channels}")
        self.space = space
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_curr),
        )
        c_pp, c_p, c = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        reductions = {layers // 3, 2 * layers // 3} if layers >= 3 else set()
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell = SearchCell(space, "reduce" if reduction else "normal", c_pp, c_p, c,
                              reduction_prev)
            cell.index = i
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.drop_path_prob: float = 0.0
        """Drop-path probability in train mode (0: off, no cost); see :meth:`set_drop_path`."""
        self.drop_path_scope: str = "op"
        """What drop-path drops: ``"op"`` (non-identity candidates) or ``"edge"`` (whole edges)."""
        self.fused_edges: bool = False
        """Run cells source-fused (:mod:`.fused_cell`): same result up to rounding, fewer
        kernels; an execution setting (``--fused-edges``), off in the reference-style path."""

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        return self.space.arch_shapes()

    # ------------------------------------------------------------------ the supernet seam
    def candidates(self) -> Iterator[Candidate]:
        """Every instantiated candidate (``none`` has no module), cell by cell, edge by edge,
        column by column."""
        for i, cell in enumerate(self.cells):
            for e, edge in enumerate(cell.edges):
                for k, op in zip(edge.columns, edge.ops):
                    yield Candidate(i, cell.cell_type, e, k, edge.op_names[k], op)

    def set_edge_forward(self, fn: EdgeForward | None) -> None:
        """Compute every mixed edge as ``fn(EdgeCall, x, w)`` (None: the standard mixture).
        While one is set, cells run the per-edge loop even with ``fused_edges``."""
        for cell in self.cells:
            cell.edge_forward = fn

    def set_partial_channels(self, k: int) -> None:
        """Partial channel connections with 1/``k`` of the channels through the candidates
        (see :meth:`nasbench_eval.spaces.supernet.Supernet.set_partial_channels`); rebuilds
        every candidate, so it is called before an optimizer holds the parameters."""
        if k < 1:
            raise SupernetSeamError(f"partial channels: k must be >= 1, got {k}")
        for cell in self.cells:
            for edge in cell.edges:
                if edge.channels % k:
                    raise SupernetSeamError(
                        f"partial channels: --partial-channels {k} must divide the channels "
                        f"of every edge; cell {cell.index} has {edge.channels} (--channels "
                        f"should be a multiple of {k})")
        if k == self.cells[0].edges[0].partial:
            return
        for cell in self.cells:
            cell._fused = None
            for edge in cell.edges:
                edge.set_partial(k)

    def node_edges(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """The edges into each intermediate node (same for both cell types)."""
        groups = tuple(tuple(e for e, (_, tgt) in enumerate(self.space.edges) if tgt == node)
                       for node in range(self.space.nodes))
        return {cell_type: groups for cell_type in self.space.arch_shapes()}

    def set_drop_path(self, prob: float, scope: str = "op") -> None:
        """Drop-path with probability ``prob`` in [0, 1) in train mode; ``scope`` ``"op"``
        (each non-identity candidate) or ``"edge"`` (each edge's mixed output)."""
        if scope not in DROP_PATH_SCOPES:
            raise SupernetSeamError(f"drop-path scope must be one of "
                                    f"{', '.join(DROP_PATH_SCOPES)}, got {scope!r}")
        if not 0.0 <= prob < 1.0:
            raise SupernetSeamError(f"drop-path probability must be in [0, 1), got {prob!r}")
        self.drop_path_prob, self.drop_path_scope = float(prob), scope

    def set_fused_edges(self, enabled: bool) -> None:
        """Run the cells source-fused (:mod:`.fused_cell`) when ``enabled``; a cell steps aside
        to the per-edge loop while drop-path or an edge forward is active."""
        self.fused_edges = bool(enabled)

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        p = float(self.drop_path_prob) if self.training else 0.0
        if p and self.drop_path_scope not in DROP_PATH_SCOPES:
            raise ValueError(f"drop_path_scope must be one of {', '.join(DROP_PATH_SCOPES)}, "
                             f"got {self.drop_path_scope!r}")
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights[cell.cell_type], p, self.drop_path_scope,
                              self.fused_edges)
        return self.classifier(self.pool(s1).flatten(1))
