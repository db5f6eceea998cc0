"""The ``darts-cell`` spec: a DARTS-style cell space (``nodes`` and the candidate ops of every
edge), parsed and validated into a :class:`SearchSpace`.

Spec files are found and dispatched to their family by :mod:`..registry`; every problem is
reported with the file, the field and what would be valid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from ...errors import SpecError, did_you_mean
from .ops import OPS

CELL_TYPES = ("normal", "reduce")
_TOP_KEYS = {"name", "family", "description", "source", "nodes", "ops", "normal", "reduce"}
_CELL_KEYS = {"ops", "edge_ops"}


def edges_of(nodes: int) -> list[tuple[int, int]]:
    """(source, target node) of every edge; inputs are states 0 and 1, node i is state i+2."""
    return [(src, node) for node in range(nodes) for src in range(node + 2)]


@dataclass(frozen=True)
class SearchSpace:
    """A validated DARTS-family space: per cell type, the candidate ops of every edge.

    ``edge_ops[cell][e]`` is the tuple of op names of edge ``e``; the order is the column
    order of that cell's architecture-weight matrix.
    """

    name: str
    family: str
    nodes: int
    edge_ops: dict[str, tuple[tuple[str, ...], ...]]
    description: str = ""
    source: str = ""
    path: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def edges(self) -> list[tuple[int, int]]:
        return edges_of(self.nodes)

    @property
    def num_edges(self) -> int:
        return len(self.edges)

    def num_ops(self, cell: str) -> int:
        return len(self.edge_ops[cell][0])

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        """Shape of the architecture-weight matrix of each cell type: (edges, candidates)."""
        return {cell: (self.num_edges, self.num_ops(cell)) for cell in CELL_TYPES}

    def op_sets(self) -> dict[str, list[str]]:
        """Distinct ops used in each cell type, in first-seen order."""
        out: dict[str, list[str]] = {}
        for cell in CELL_TYPES:
            seen: list[str] = []
            for ops in self.edge_ops[cell]:
                seen += [o for o in ops if o not in seen]
            out[cell] = seen
        return out

    def uniform_ops(self) -> tuple[str, ...] | None:
        """The op list when every edge of both cells has the same one (S2-S4, DARTS)."""
        lists = {ops for cell in CELL_TYPES for ops in self.edge_ops[cell]}
        return next(iter(lists)) if len(lists) == 1 else None

    def count_cells(self, cell: str) -> int:
        """Number of distinct discrete cells a derivation can return.

        A discrete cell keeps two distinct incoming edges per node and one non-``none`` op on
        each (the DARTS rule). Counted as genotypes: edge order within a node does not
        matter, isomorphic graphs (e.g. two nodes swapped) are counted separately, as the
        DARTS paper counts its ~10^9 cells.
        """
        choices = [sum(1 for o in ops if not OPS[o].is_zero) for ops in self.edge_ops[cell]]
        total = 1
        for node in range(self.nodes):
            ids = [i for i, (_, tgt) in enumerate(self.edges) if tgt == node]
            total *= sum(choices[a] * choices[b] for a, b in combinations(ids, 2))
        return total

    def count_architectures(self) -> int:
        """Distinct (normal, reduce) pairs."""
        return math.prod(self.count_cells(c) for c in CELL_TYPES)

    def sample_genotype(self, generator: Any):
        """A genotype drawn uniformly from the discrete cells :meth:`count_cells` counts,
        independently for the normal and the reduction cell.

        Per node, the pair of incoming edges is drawn with probability proportional to the
        number of discrete cells through it (the product of the two edges' non-``none`` op
        counts), then one non-``none`` op per edge uniformly: every genotype has probability
        1 / count_cells. Within a node the lower source state comes first, so the two orders
        of one cell never both occur. ``generator``: a CPU ``torch.Generator``, the only
        source of randomness.
        """
        import torch

        from .genotype import Genotype

        def draw(n: int) -> int:
            return int(torch.randint(n, (1,), generator=generator))

        cells = {}
        for cell in CELL_TYPES:
            real = [[o for o in ops if not OPS[o].is_zero] for ops in self.edge_ops[cell]]
            pairs: list[tuple[str, int]] = []
            for node in range(self.nodes):
                ids = [i for i, (_, tgt) in enumerate(self.edges) if tgt == node]
                options = list(combinations(ids, 2))
                weights = torch.tensor([float(len(real[a]) * len(real[b])) for a, b in options],
                                       dtype=torch.float64)
                a, b = options[int(torch.multinomial(weights, 1, generator=generator))]
                for e in (a, b):
                    pairs.append((real[e][draw(len(real[e]))], self.edges[e][0]))
            cells[cell] = tuple(pairs)
        concat = tuple(range(2, 2 + self.nodes))
        return Genotype(normal=cells["normal"], reduce=cells["reduce"], normal_concat=concat,
                        reduce_concat=concat)

    # ------------------------------------------------------------- family interface
    def build_supernet(self, channels: int, layers: int, num_classes: int, in_channels: int):
        from .supernet import DartsSupernet

        return DartsSupernet(self, channels, layers, num_classes, in_channels)

    def derive(self, weights: dict[str, Any]):
        """The DARTS rule: see :func:`nasbench_eval.spaces.darts.genotype.derive_genotype`."""
        from .genotype import derive_genotype

        return derive_genotype(self, weights)

    def discrete_weights(self, genotype: Any, device: Any = "cpu") -> dict[str, Any]:
        from .genotype import discrete_weights

        return discrete_weights(self, genotype, device)

    def genotype_from_dict(self, d: dict[str, Any]):
        from .genotype import Genotype

        return Genotype.from_dict(d)

    def describe(self) -> list[str]:
        """Lines for ``nasbench-eval list spaces``: op sets and computed cell counts."""
        lines = [f"{self.name}  ({self.family}, {self.nodes} nodes, {self.num_edges} edges) - "
                 f"{self.description}"]
        uniform = self.uniform_ops()
        if uniform:
            lines.append(f"    ops (every edge): {', '.join(uniform)}")
        else:
            for cell, ops in self.op_sets().items():
                lines.append(f"    {cell} ops (per-edge lists of {self.num_ops(cell)}): "
                             f"{', '.join(ops)}")
        n = self.count_architectures()
        lines.append(f"    discrete cells: normal {self.count_cells('normal'):,}  reduce "
                     f"{self.count_cells('reduce'):,}  architectures (normal x reduce) {n:,} "
                     f"(~{float(n):.2e})")
        lines.append("    (genotypes: 2 distinct input edges per node, one non-'none' op per "
                     "edge; isomorphic cells counted separately, as the DARTS paper counts)")
        return lines


def _require(cond: bool, file: str, field_: str, problem: str) -> None:
    if not cond:
        raise SpecError(file, field_, problem)


def _op_list(raw: Any, file: str, field_: str) -> tuple[str, ...]:
    _require(isinstance(raw, list) and len(raw) > 0, file, field_,
             f"must be a non-empty list of op names, got {raw!r}")
    for i, name in enumerate(raw):
        _require(isinstance(name, str), file, f"{field_}[{i}]",
                 f"op names are strings, got {name!r}")
        if name not in OPS:
            raise SpecError(file, f"{field_}[{i}]",
                            f"unknown op '{name}'; valid ops: {', '.join(sorted(OPS))}")
    _require(len(set(raw)) == len(raw), file, field_, f"an op is listed twice: {raw}")
    _require(any(not OPS[o].is_zero for o in raw), file, field_,
             "needs at least one op other than 'none' (a discrete edge must carry an op)")
    return tuple(raw)


def parse_darts_cell(data: dict[str, Any], file: str) -> SearchSpace:
    """A DARTS-style cell space: ``nodes`` and the candidate ops of every edge."""
    extra = set(data) - _TOP_KEYS
    _require(not extra, file, sorted(extra)[0] if extra else "",
             f"unknown field; valid fields: {', '.join(sorted(_TOP_KEYS))}"
             + did_you_mean(sorted(extra)[0] if extra else "", _TOP_KEYS))
    _require("nodes" in data, file, "nodes", "missing (required)")
    name, family, nodes = data["name"], data["family"], data["nodes"]
    _require(isinstance(nodes, int) and not isinstance(nodes, bool) and 1 <= nodes <= 10,
             file, "nodes", f"must be an integer in 1..10, got {nodes!r}")
    n_edges = len(edges_of(nodes))

    shared = _op_list(data["ops"], file, "ops") if "ops" in data else None
    edge_ops: dict[str, tuple[tuple[str, ...], ...]] = {}
    for cell in CELL_TYPES:
        table = data.get(cell)
        if table is None:
            _require(shared is not None, file, cell,
                     "missing: give a top-level 'ops' list or a [normal] and a [reduce] table")
            edge_ops[cell] = (shared,) * n_edges  # type: ignore[assignment]
            continue
        _require(isinstance(table, dict), file, cell, "must be a table ([normal] / [reduce])")
        bad = set(table) - _CELL_KEYS
        _require(not bad, file, f"{cell}.{sorted(bad)[0] if bad else ''}",
                 f"unknown field; valid fields: {', '.join(sorted(_CELL_KEYS))}"
                 + did_you_mean(sorted(bad)[0] if bad else "", _CELL_KEYS))
        _require(("ops" in table) != ("edge_ops" in table), file, cell,
                 "give exactly one of 'ops' (same list on every edge) or 'edge_ops' (one list per edge)")
        if "ops" in table:
            edge_ops[cell] = (_op_list(table["ops"], file, f"{cell}.ops"),) * n_edges
        else:
            lists = table["edge_ops"]
            _require(isinstance(lists, list) and len(lists) == n_edges, file, f"{cell}.edge_ops",
                     f"must list exactly {n_edges} edges for {nodes} nodes, got "
                     f"{len(lists) if isinstance(lists, list) else repr(lists)}")
            edge_ops[cell] = tuple(_op_list(ops, file, f"{cell}.edge_ops[{i}]")
                                   for i, ops in enumerate(lists))
        widths = {len(ops) for ops in edge_ops[cell]}
        _require(len(widths) == 1, file, f"{cell}.edge_ops",
                 f"every edge of a cell must have the same number of candidates, got {sorted(widths)}")
    for key in ("description", "source"):
        _require(isinstance(data.get(key, ""), str), file, key, "must be a string")
    return SearchSpace(name=name, family=family, nodes=nodes, edge_ops=edge_ops,
                       description=data.get("description", ""), source=data.get("source", ""),
                       path=file)
