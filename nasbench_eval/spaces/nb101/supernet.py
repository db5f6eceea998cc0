"""The NAS-Bench-1Shot1 one-shot network (the ``nb101-cell`` supernet).

Architecture weights are a ``forward`` argument (one tensor per
:meth:`~.space.Nb101CellSpace.arch_shapes` key, shared by all cells). The supernet seam
(:mod:`nasbench_eval.spaces.supernet`): :meth:`Nb101OneShot.candidates` enumerates the op
candidates of every choice block; a custom edge forward and drop-path are not supported
(:class:`~nasbench_eval.spaces.supernet.SupernetSeamError`).
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from ...errors import NasbenchEvalError
from ...nb101.graph import LABELS, MAXPOOL3X3
from ..supernet import Candidate, EdgeForward, SupernetBase, SupernetSeamError
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
    """sum_k w[k] * op_k(x) over the space's ops (columns in the spec's order)."""

    def __init__(self, ops: tuple[str, ...], channels: int):
        super().__init__()
        self.ops = nn.ModuleList(build_nb101_op(o, channels) for o in ops)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        out = w[0] * self.ops[0](x)
        for k in range(1, len(self.ops)):
            out = out + w[k] * self.ops[k](x)
        return out


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

    def set_edge_forward(self, fn: EdgeForward | None) -> None:
        if fn is not None:
            raise SupernetSeamError(
                f"space '{self.space.name}' (nb101-cell): its one-shot model does not support "
                f"a custom edge forward (set_edge_forward); use a method that only changes the "
                f"architecture weights")

    def set_drop_path(self, prob: float, scope: str = "op") -> None:
        if prob:
            raise SupernetSeamError(
                f"space '{self.space.name}' (nb101-cell): its one-shot model has no drop-path "
                f"(set_drop_path({prob}))")


__all__ = ["ChoiceBlock", "ConvBnRelu", "Nb101OneShot", "OneShotCell", "build_nb101_op"]
