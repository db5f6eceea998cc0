"""The NAS-Bench-1Shot1 one-shot network (the ``nb101-cell`` supernet).

Architecture weights are a ``forward`` argument (one tensor per
:meth:`~.space.Nb101CellSpace.arch_shapes` key, shared by all cells). The supernet seam
(:mod:`nasbench_eval.spaces.supernet`): :meth:`Nb101OneShot.candidates` enumerates the op
candidates of every choice block; the mixed op of a choice block is the family's "mixed
edge": a custom edge forward (GDAS's single path) and partial channels (PC-DARTS) apply to
it, as NAS-Bench-1Shot1's own ``optimizers/gdas`` and ``optimizers/pc_darts`` replace exactly
that module; :meth:`Nb101OneShot.node_edges` says every ``ops`` row is the only mixed op of
its block. Drop-path is not supported
(:class:`~nasbench_eval.spaces.supernet.SupernetSeamError`).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ...errors import NasbenchEvalError
from ...nb101.graph import LABELS, MAXPOOL3X3
from ..supernet import (Candidate, EdgeCall, EdgeForward, SupernetBase, SupernetSeamError,
                        partial_channel_edge)
from .space import Nb101CellSpace


# ============================================================================ one-shot model

class ConvBnRelu(nn.Module):
    """conv kxk (stride 1, same padding) -> BN -> ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, affine: bool = True):
        super().__init__()
        self.op = nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                                nn.BatchNorm2d(c_out, affine=affine), nn.ReLU(inplace=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


def build_nb101_op(name: str, channels: int) -> nn.Module:
    if name == MAXPOOL3X3:
        return nn.MaxPool2d(3, stride=1, padding=1)
    if name == "conv3x3-bn-relu":
        return ConvBnRelu(channels, channels, 3, affine=False)
    if name == "conv1x1-bn-relu":
        return ConvBnRelu(channels, channels, 1, affine=False)
    raise NasbenchEvalError(f"unknown NAS-Bench-101 op {name!r}; valid: {', '.join(LABELS)}")


class ChoiceBlock(nn.Module):
    """The mixed op of a choice block: sum_k w[k] * op_k(x) over the space's ops (columns in
    the spec's order), or a method's edge forward (:attr:`edge_forward`).

    With partial channels (``partial`` = k > 1, :meth:`set_partial`) the ops run on the first
    1/k of the channels; the rest bypass them (times the row sum of ``w``: 1 on the simplex),
    and the two are concatenated and channel-shuffled in k groups, as NAS-Bench-1Shot1's
    PC-DARTS mixed op (which has no edge weight, so its bypass is unscaled).
    """

    def __init__(self, ops: tuple[str, ...], channels: int):
        super().__init__()
        self.op_names = ops
        self.channels = channels
        self.ops = nn.ModuleList(build_nb101_op(o, channels) for o in ops)
        self.partial = 1
        self.cell = self.block = 0
        """Where the block sits (cell index, block - 1): an :class:`EdgeCall`'s address."""
        self.edge_forward: EdgeForward | None = None

    def set_partial(self, k: int) -> None:
        """Rebuild the ops on ``channels // k`` channels (fresh parameters)."""
        self.partial = k
        self.ops = nn.ModuleList(build_nb101_op(o, self.channels // k) for o in self.op_names)

    def mix(self, x: Tensor, w: Tensor) -> Tensor:
        out = w[0] * self.ops[0](x)
        for k in range(1, len(self.ops)):
            out = out + w[k] * self.ops[k](x)
        return out

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.edge_forward is None:
            inner = lambda h: self.mix(h, w)  # noqa: E731
        else:
            fn = self.edge_forward
            call = EdgeCall(self.cell, "ops", self.block, tuple(self.op_names),
                            tuple(range(len(self.ops))), tuple(self.ops), self.mix)
            inner = lambda h: fn(call, h, w)  # noqa: E731
        return partial_channel_edge(x, w, self.partial, 1, inner)


class OneShotCell(nn.Module):
    """One NAS-Bench-1Shot1 search cell: ``c_in`` -> ``blocks * c`` channels.

    Block i's input is the weighted sum over its candidate parents (node 0 stands for the
    block's own 1x1 conv-BN-ReLU projection of the cell input; fixed parents are summed
    unweighted); the block mixes the ops. The output is the concatenation of the blocks'
    outputs, each scaled by its output weight, plus output weight 0 times a 1x1 projection
    of the cell input to ``blocks * c`` channels.
    """

    def __init__(self, space: Nb101CellSpace, c_in: int, c: int):
        super().__init__()
        self.space = space
        self.blocks = space.blocks
        self.proj = nn.ModuleList(ConvBnRelu(c_in, c, 1, affine=False)
                                  for _ in range(space.blocks))
        self.out_proj = ConvBnRelu(c_in, c * space.blocks, 1, affine=False)
        self.choice = nn.ModuleList(ChoiceBlock(space.ops, c) for _ in range(space.blocks))
        self.out_channels = c * space.blocks

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        states: list[Tensor] = []  # outputs of blocks 1..i-1
        w_ops = weights["ops"]
        for i in range(1, self.blocks + 1):
            cand = self.space.candidates(i)
            node = lambda j: self.proj[i - 1](x) if j == 0 else states[j - 1]  # noqa: E731
            if self.space.fixed[i - 1] is not None:
                h = node(cand[0])
                for j in cand[1:]:
                    h = h + node(j)
            else:
                w = weights[f"parents_{i}"][0]
                h = w[0] * node(0)
                for j in range(1, i):
                    h = h + w[j] * node(j)
            states.append(self.choice[i - 1](h, w_ops[i - 1]))
        w_out = weights["output"][0]
        cat = torch.cat([w_out[i] * s for i, s in enumerate(states, start=1)], dim=1)
        return cat + w_out[0] * self.out_proj(x)


class Nb101OneShot(SupernetBase):
    """The NAS-Bench-1Shot1 one-shot network.

    Stem 3x3 conv-BN-ReLU to ``channels``; ``layers`` search cells in 3 stacks, a 2x2 max-pool
    (stride 2) and channel doubling before cells ``layers // 3`` and ``2 * layers // 3``
    (9 = the reference's 3 stacks of 3); head ReLU -> 1x1 conv -> BN, global average pool,
    linear. ``forward(x, weights)`` takes the mixed architecture weights (one tensor per
    :meth:`Nb101CellSpace.arch_shapes` key), shared by all cells.
    """

    def __init__(self, space: Nb101CellSpace, channels: int = 16, layers: int = 9,
                 num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if layers < 3:
            raise NasbenchEvalError(
                f"space '{space.name}' builds 3 stacks of cells (max-pool between stacks), so "
                f"layers (total cells) must be >= 3, got {layers}; the reference uses 9")
        if channels < 1:
            raise NasbenchEvalError(f"channels must be >= 1, got {channels}")
        self.space = space
        self.stem = ConvBnRelu(in_channels, channels, 3)
        self.pool_before = {layers // 3, 2 * layers // 3}
        self.cells = nn.ModuleList()
        self.pools = nn.ModuleDict()
        c, c_in = channels, channels
        for i in range(layers):
            if i in self.pool_before:
                self.pools[str(i)] = nn.MaxPool2d(2, stride=2)
                c *= 2
            cell = OneShotCell(space, c_in, c)
            for b, block in enumerate(cell.choice):
                block.cell, block.block = i, b
            self.cells.append(cell)
            c_in = cell.out_channels
        self.head = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(c_in, c, 1, bias=False),
                                  nn.BatchNorm2d(c))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        return self.space.arch_shapes()

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        h = self.stem(x)
        for i, cell in enumerate(self.cells):
            if i in self.pool_before:
                h = self.pools[str(i)](h)
            h = cell(h, weights)
        return self.classifier(self.pool(self.head(h)).flatten(1))

    # ------------------------------------------------------------------ supernet seam
    def candidates(self) -> Iterator[Candidate]:
        """Every op of every choice block: cell type ``"ops"``, edge = block - 1 (the row of
        the ``ops`` weights), column = op index. The parent and output rows weight whole
        states, not candidate modules, so they have no candidates."""
        for c, cell in enumerate(self.cells):
            for b, block in enumerate(cell.choice):
                for k, module in enumerate(block.ops):
                    yield Candidate(cell=c, cell_type="ops", edge=b, column=k,
                                    op=self.space.ops[k], module=module)

    def choice_blocks(self) -> Iterator[ChoiceBlock]:
        for cell in self.cells:
            yield from cell.choice

    def set_edge_forward(self, fn: EdgeForward | None) -> None:
        """Compute the mixed op of every choice block as ``fn(EdgeCall, x, w)`` (None: the
        weighted sum). The call's ``cell_type`` is ``"ops"`` and ``edge`` the block's row of
        the ``ops`` weights; the parent and output rows are not edges with candidates and are
        always mixed by the cell."""
        for block in self.choice_blocks():
            block.edge_forward = fn

    def set_partial_channels(self, k: int) -> None:
        """Partial channel connections on every choice block's mixed op (see
        :meth:`nasbench_eval.spaces.supernet.Supernet.set_partial_channels`; NAS-Bench-1Shot1's
        PC-DARTS uses k = 4 there); rebuilds every op, so it is called before an optimizer
        holds the parameters. The projections and the output edge keep all channels."""
        if k < 1:
            raise SupernetSeamError(f"partial channels: k must be >= 1, got {k}")
        for block in self.choice_blocks():
            if block.channels % k:
                raise SupernetSeamError(
                    f"partial channels: --partial-channels {k} must divide the block width of "
                    f"every choice block; cell {block.cell} has {block.channels} (--channels "
                    f"should be a multiple of {k})")
        if k == self.cells[0].choice[0].partial:
            return
        for block in self.choice_blocks():
            block.set_partial(k)

    def node_edges(self) -> dict[str, tuple[tuple[int, ...], ...]]:
        """Every row is alone in its group: an ``ops`` row is the only mixed op of its block,
        and a ``parents_<i>`` / ``output`` row holds all the edges into its node as columns,
        already a softmax over the edges into the node. So PC-DARTS's edge normalisation
        (softmax of beta within a group) scales every row by exactly 1 here, which is what
        NAS-Bench-1Shot1's PC-DARTS does: it has no beta."""
        return {key: tuple((r,) for r in range(shape[0]))
                for key, shape in self.space.arch_shapes().items()}

    def set_drop_path(self, prob: float, scope: str = "op") -> None:
        if prob:
            raise SupernetSeamError(
                f"space '{self.space.name}' (nb101-cell): its one-shot model has no drop-path "
                f"(set_drop_path({prob}))")


__all__ = ["ChoiceBlock", "ConvBnRelu", "Nb101OneShot", "OneShotCell", "build_nb101_op"]
