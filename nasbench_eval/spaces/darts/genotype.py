"""The discrete architecture a search returns, and the DARTS rule that derives it.

A :class:`Genotype` uses the DARTS layout (per cell: two ``(op, input_state)`` pairs per
node, states 0/1 being the cell inputs), so genotypes print and compare like the papers'.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ...lazy_torch import torch
from ..base import GenotypeError
from .ops import OPS
from .spec import CELL_TYPES, SearchSpace

if TYPE_CHECKING:
    from torch import Tensor

Pair = tuple[str, int]
FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Pair, ...]
    reduce: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce_concat: tuple[int, ...]
    family: ClassVar[str] = "darts-cell"

    def cell(self, cell: str) -> tuple[Pair, ...]:
        return getattr(self, cell)

    def param_free_fraction(self, cell: str = "normal") -> float:
        """Share of the cell's chosen ops that have no weights (skip, pools, none, noise)."""
        ops = [op for op, _ in self.cell(cell)]
        return sum(not OPS[op].parametric for op in ops) / len(ops)

    def metrics(self) -> dict[str, float]:
        """Per-epoch numbers the runner records for this genotype: the parameter-free share
        of each cell (the contract of :class:`nasbench_eval.spaces.base.Genotype`)."""
        return {"param_free_normal": self.param_free_fraction("normal"),
                "param_free_reduce": self.param_free_fraction("reduce")}

    def to_dict(self) -> dict:
        return {
            "normal": [list(p) for p in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [list(p) for p in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Genotype:
        """Read :meth:`to_dict`'s form; a missing or malformed field is named in the error."""
        missing = [k for k in FIELDS if k not in d]
        if missing:
            raise GenotypeError(
                f"DARTS genotype: missing field{'s' if len(missing) > 1 else ''} "
                f"{', '.join(repr(k) for k in missing)} (it needs {', '.join(FIELDS)}); got "
                f"fields {', '.join(sorted(map(str, d))) or '(none)'}")
        pairs = {}
        for cell in ("normal", "reduce"):
            try:
                pairs[cell] = tuple((str(op), int(i)) for op, i in d[cell])
            except (TypeError, ValueError):
                raise GenotypeError(f"DARTS genotype: field '{cell}' must be a list of "
                                    f"[op, input state] pairs, got {d[cell]!r}") from None
        try:
            concat = {c: tuple(d[f"{c}_concat"]) for c in ("normal", "reduce")}
        except TypeError:
            raise GenotypeError("DARTS genotype: normal_concat / reduce_concat must be lists "
                                "of state indices") from None
        return cls(normal=pairs["normal"], reduce=pairs["reduce"],
                   normal_concat=concat["normal"], reduce_concat=concat["reduce"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def __str__(self) -> str:
        fmt = lambda pairs: " ".join(f"{op}<-{i}" for op, i in pairs)  # noqa: E731
        return f"normal[{fmt(self.normal)}] reduce[{fmt(self.reduce)}]"


def _derive_cell(space: SearchSpace, cell: str, w: Tensor) -> tuple[Pair, ...]:
    """Top-2 incoming edges per node by strongest non-``none`` weight; argmax op on each."""
    edge_ops = space.edge_ops[cell]
    w = w.detach().float().cpu()
    pairs: list[Pair] = []
    for node in range(space.nodes):
        ids = [e for e, (_, tgt) in enumerate(space.edges) if tgt == node]
        best: list[tuple[float, int, str]] = []  # (strength, source, op)
        for e in ids:
            allowed = [k for k, op in enumerate(edge_ops[e]) if not OPS[op].is_zero]
            k = max(allowed, key=lambda j: (w[e, j].item(), -j))
            best.append((w[e, k].item(), space.edges[e][0], edge_ops[e][k]))
        # stable: ties keep the lower edge index, as sorted() in the reference does
        top = sorted(range(len(best)), key=lambda i: -best[i][0])[:2]
        pairs += [(best[i][2], best[i][1]) for i in top]  # strongest first, as DARTS prints
    return tuple(pairs)


def derive_genotype(space: SearchSpace, weights: dict[str, Tensor]) -> Genotype:
    concat = tuple(range(2, 2 + space.nodes))
    return Genotype(
        normal=_derive_cell(space, "normal", weights["normal"]),
        reduce=_derive_cell(space, "reduce", weights["reduce"]),
        normal_concat=concat,
        reduce_concat=concat,
    )


def discrete_weights(space: SearchSpace, genotype: Genotype,
                     device: torch.device | str = "cpu") -> dict[str, Tensor]:
    """One-hot mixing weights that make the supernet compute exactly ``genotype``.

    Edges the genotype does not use get an all-zero row, so they contribute nothing.
    """
    out: dict[str, Tensor] = {}
    for cell in CELL_TYPES:
        rows, cols = space.arch_shapes()[cell]
        w = torch.zeros(rows, cols, device=device)
        pairs = genotype.cell(cell)
        for node in range(space.nodes):
            for op, src in pairs[2 * node: 2 * node + 2]:
                e = space.edges.index((src, node))
                try:
                    k = space.edge_ops[cell][e].index(op)
                except ValueError:
                    raise ValueError(
                        f"genotype op '{op}' on {cell} edge {src}->{node} is not a candidate "
                        f"of space '{space.name}' there ({', '.join(space.edge_ops[cell][e])})"
                    ) from None
                w[e, k] = 1.0
        out[cell] = w
    return out
