"""The NAS-Bench-201 search supernet (the ``nb201-cell`` family's).

The benchmark paper's search network: stem, three stages of search cells with a residual block
halving the resolution and doubling the channels between them (N = 5 cells per stage and 16
channels at the reference setting: ``--layers 15 --channels 16``), BN + ReLU, global pooling,
a linear classifier. Search cells use BN without affine parameters. Every cell shares one
weight tensor ``"cell"`` of shape (edges, candidates); a mixed edge is the weighted sum of its
candidates (``none`` contributes zero and is not computed).

The supernet seam (:mod:`nasbench_eval.spaces.supernet`): :meth:`Nb201Supernet.candidates`,
``classifier``, :meth:`Nb201Supernet.set_edge_forward` (GDAS's single sampled candidate per
edge), :meth:`Nb201Supernet.set_partial_channels` (PC-DARTS: 1/k of the channels through the
candidates, the rest bypassing them, shuffled), :meth:`Nb201Supernet.node_edges` (the edges
summed into each node: PC-DARTS's edge normalisation), :meth:`Nb201Supernet.set_drop_path`
(scope ``"op"``: each non-identity candidate's output, or ``"edge"``: each mixed edge's
output) and :meth:`Nb201Supernet.set_fused_edges` (the execution layer's switch for the
source-fused cells of :mod:`.fused_cell`; see ``docs/nb201.md`` for what they measured).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ..supernet import (Candidate, EdgeCall, EdgeForward, SupernetBase, SupernetSeamError,
                        drop_path, mix_candidates, partial_channel_edge)
from .fused_cell import FusedNb201Cell
from .fused_cell import usable as fused_cell_usable
from .genotype import KEY, edge_list
from .ops import Identity, build_op, build_skeleton, head

DROP_PATH_SCOPES = ("op", "edge")


class MixedEdge(nn.Module):
    """All candidates of one edge: ``sum_k w[k] * op_k(x)`` over the candidates with a
    module (``none`` has none). With partial channels (``partial`` = k > 1,
    :meth:`set_partial`) the candidates see the first 1/k of the channels and :meth:`wrap`
    adds the bypass and the shuffle (every NAS-Bench-201 cell edge has stride 1)."""

    def __init__(self, op_names: tuple[str, ...], channels: int):
        super().__init__()
        self.op_names = op_names
        self.channels = channels
        self.columns = [k for k, name in enumerate(op_names) if name != "none"]
        self.ops = nn.ModuleList(build_op(op_names[k], channels, affine=False)
                                 for k in self.columns)
        self.partial = 1

    def forward(self, x: Tensor, w: Tensor, drop_prob: float = 0.0) -> Tensor:
        if self.partial == 1:
            return self.mix(x, w, drop_prob)
        return self.wrap(x, w, lambda h: self.mix(h, w, drop_prob))

    # ------------------------------------------------------------------ partial channels
    def set_partial(self, k: int) -> None:
        """Rebuild the candidates on ``channels // k`` channels (fresh parameters)."""
        self.partial = k
        self.ops = nn.ModuleList(build_op(self.op_names[j], self.channels // k, affine=False)
                                 for j in self.columns)

    def wrap(self, x: Tensor, w: Tensor, inner) -> Tensor:
        """``inner`` (the candidates' computation) on the edge's input, directly or on the
        first 1/k of the channels with the bypass and the shuffle
        (:func:`~nasbench_eval.spaces.supernet.partial_channel_edge`)."""
        return partial_channel_edge(x, w, self.partial, 1, inner)

    def mix(self, x: Tensor, w: Tensor, drop_prob: float = 0.0) -> Tensor:
        """sum_k w[k] * op_k(x); ``drop_prob`` > 0 (train mode only): drop-path on every
        non-identity candidate."""
        drop = drop_prob if self.training else 0.0
        out = mix_candidates(x, w, self.columns, self.ops, drop, Identity)
        if out is None:  # an edge whose only candidate is none
            return torch.zeros_like(x)
        return out


class SearchCell(nn.Module):
    """Node j = sum over i < j of mixed edge (i -> j) on node i; the last node is the output."""

    def __init__(self, nodes: int, op_names: tuple[str, ...], channels: int, index: int):
        super().__init__()
        self.nodes = nodes
        self.edge_index = edge_list(nodes)
        self.edges = nn.ModuleList(MixedEdge(op_names, channels) for _ in self.edge_index)
        self.index = index
        self.edge_forward: EdgeForward | None = None
        self._fused: FusedNb201Cell | None = None

    def forward(self, x: Tensor, w: Tensor, drop_prob: float, drop_scope: str,
                fused: bool = False) -> Tensor:
        # drop-path draws per candidate or edge: the per-edge loop keeps its RNG order;
        # partial-channel edges run the per-edge loop too
        if (fused and not (drop_prob > 0.0 and self.training) and self.edges[0].partial == 1
                and fused_cell_usable(self)):
            plan = self._fused
            if plan is None or not plan.current():
                plan = self._fused = FusedNb201Cell(self)
            return plan.forward(x, w)
        op_prob = drop_prob if drop_scope == "op" else 0.0
        edge_drop = drop_prob > 0.0 and drop_scope == "edge" and self.training
        states = [x]
        e = 0
        for t in range(1, self.nodes):
            total = None
            for s in range(t):
                y = self._edge(e, states[s], w[e], op_prob)
                if edge_drop:
                    y = drop_path(y, drop_prob)
                total = y if total is None else total + y
                e += 1
            states.append(total)
        return states[-1]

    def _edge(self, e: int, x: Tensor, w: Tensor, op_prob: float) -> Tensor:
        edge = self.edges[e]
        if self.edge_forward is None:
            return edge(x, w, op_prob)
        call = EdgeCall(self.index, KEY, e, tuple(edge.op_names), tuple(edge.columns),
                        tuple(edge.ops), lambda x_, w_: edge.mix(x_, w_, op_prob))
        fn = self.edge_forward
        return edge.wrap(x, w, lambda h: fn(call, h, w))


class Nb201Supernet(SupernetBase):
    """Stem, 3 stages of ``layers`` search cells in all (residual blocks between stages),
    BN + ReLU, global pool, classifier; ``forward(x, {"cell": W})``."""

    def __init__(self, nodes: int, ops: tuple[str, ...], channels: int = 16, layers: int = 15,
                 num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.nodes, self.op_names = nodes, ops
        self.n_edges = len(edge_list(nodes))
        self._cells: list[SearchCell] = []

        def make_cell(c: int) -> SearchCell:
            cell = SearchCell(nodes, ops, c, len(self._cells))
            self._cells.append(cell)
            return cell

        build_skeleton(self, make_cell, channels, layers, num_classes, in_channels)
        self.drop_path_prob: float = 0.0
        self.drop_path_scope: str = "op"
        self.fused_edges: bool = False
        """Run cells source-fused (:mod:`.fused_cell`): same result up to rounding; an
        execution setting (``--fused-edges``)."""

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        return {KEY: (self.n_edges, len(self.op_names))}

    def cells(self) -> list[SearchCell]:
        """The search cells, input to output."""
        return [m for m, c in zip(self.layers, self.is_cell) if c]

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        w = weights[KEY]
        p = float(self.drop_path_prob) if self.training else 0.0
        h = self.stem(x)
        for layer, is_cell in zip(self.layers, self.is_cell):
            h = (layer(h, w, p, self.drop_path_scope, self.fused_edges) if is_cell
                 else layer(h))
        return head(self, h)

    # ------------------------------------------------------------------ the supernet seam
    def candidates(self) -> Iterator[Candidate]:
        """Every candidate with a module (``none`` has none), cell by cell, edge by edge."""
        for cell in self.cells():
            for e, edge in enumerate(cell.edges):
                for k, op in zip(edge.columns, edge.ops):
                    yield Candidate(cell.index, KEY, e, k, edge.op_names[k], op)

    def set_edge_forward(self, fn: EdgeForward | None) -> None:
        """Compute every mixed edge as ``fn(EdgeCall, x, w)`` (None: the standard mixture).
        While one is set, cells run the per-edge loop even with ``fused_edges``."""
        for cell in self.cells():
            cell.edge_forward = fn

    def set_partial_channels(self, k: int) -> None:
        """Partial channel connections with 1/``k`` of the channels through the candidates
        (see :meth:`nasbench_eval.spaces.supernet.Supernet.set_partial_channels`); rebuilds
        every candidate, so it is called before an optimizer holds the parameters. The
        stages have ``channels``, 2x and 4x channels: ``k`` must divide ``--channels``."""
        if k < 1:
            raise SupernetSeamError(f"partial channels: k must be >= 1, got {k}")
        cells = self.cells()
        for cell in cells:
            c = cell.edges[0].channels
            if c % k:
                raise SupernetSeamError(
                    f"partial channels: --partial-channels {k} must divide the channels of "
                    f"every edge; cell {cell.index} has {c} (--channels should be a multiple "
                    f"of {k})")
        if k == cells[0].edges[0].partial:
            return
        for cell in cells:
            cell._fused = None
            for edge in cell.edges:
                edge.set_partial(k)

    def node_edges(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """The edges summed into each node 1..nodes-1 (rows of ``"cell"``): node t's edges
        come from every node s < t. Every cell shares the one weight key."""
        edges = edge_list(self.nodes)
        return {KEY: tuple(tuple(e for e, (_, t) in enumerate(edges) if t == node)
                           for node in range(1, self.nodes))}

    def set_drop_path(self, prob: float, scope: str = "op") -> None:
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


__all__ = ["KEY", "MixedEdge", "Nb201Supernet", "SearchCell"]
