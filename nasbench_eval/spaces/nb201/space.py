"""``nb201-cell`` spaces: the spec (``spaces/nb201.toml``), derivation and sizes.

A spec names the node count (NAS-Bench-201: 4, so 6 edges) and the candidate ops (a subset of
:data:`~.genotype.NB201_OPS`, in alpha column order). Derivation is the benchmark's: the
argmax candidate of every edge, ``none`` included (ties: the lower column). ``describe()``
counts the cells and the distinct ones after isomorphism by enumeration
(:func:`~.genotype.count_cells`) and compares them with the published figures in the spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ...errors import SpecError
from ...lazy_torch import torch
from ..base import GenotypeError
from .genotype import FAMILY, KEY, NB201_OPS, Nb201Genotype, count_cells, edge_list

if TYPE_CHECKING:
    from torch import Tensor

    from .supernet import Nb201Supernet

_KEYS = {"name", "family", "description", "source", "nodes", "ops", "published_cells",
         "published_distinct", "published_source"}


@dataclass(frozen=True)
class Nb201Space:
    name: str
    family: str
    nodes: int
    ops: tuple[str, ...]
    description: str = ""
    source: str = ""
    published_cells: int | None = None
    published_distinct: int | None = None
    published_source: str = ""
    path: str = ""

    @property
    def n_edges(self) -> int:
        return len(edge_list(self.nodes))

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        return {KEY: (self.n_edges, len(self.ops))}

    def build_supernet(self, channels: int, layers: int, num_classes: int,
                       in_channels: int) -> Nb201Supernet:
        from .supernet import Nb201Supernet  # torch, imported when a supernet is built

        return Nb201Supernet(self.nodes, self.ops, channels, layers, num_classes, in_channels)

    def derive(self, weights: dict[str, Tensor]) -> Nb201Genotype:
        """The argmax candidate of every edge (``none`` included; ties: the lower column)."""
        w = weights[KEY].detach().float().cpu()
        if tuple(w.shape) != self.arch_shapes()[KEY]:
            raise GenotypeError(f"space '{self.name}': weights '{KEY}' have shape "
                                f"{tuple(w.shape)}, expected {self.arch_shapes()[KEY]}")
        ops = []
        for e in range(self.n_edges):
            row = w[e].tolist()
            ops.append(self.ops[max(range(len(row)), key=lambda k: (row[k], -k))])
        return Nb201Genotype(tuple(ops))

    def check_genotype(self, g: Nb201Genotype) -> Nb201Genotype:
        if g.nodes != self.nodes:
            raise GenotypeError(f"genotype {g} has {g.nodes} nodes; space '{self.name}' has "
                                f"{self.nodes}")
        bad = [op for op in g.ops if op not in self.ops]
        if bad:
            raise GenotypeError(f"genotype {g}: op {bad[0]!r} is not a candidate of space "
                                f"'{self.name}' ({', '.join(self.ops)})")
        return g

    def discrete_weights(self, genotype: Any, device: Any = "cpu") -> dict[str, Tensor]:
        g = self.check_genotype(genotype)
        w = torch.zeros(self.arch_shapes()[KEY], device=device)
        for e, op in enumerate(g.ops):
            w[e, self.ops.index(op)] = 1.0
        return {KEY: w}

    def genotype_from_dict(self, d: Any) -> Nb201Genotype:
        return self.check_genotype(Nb201Genotype.from_dict(d))

    def sample_genotype(self, generator: torch.Generator) -> Nb201Genotype:
        idx = torch.randint(len(self.ops), (self.n_edges,), generator=generator).tolist()
        return Nb201Genotype(tuple(self.ops[k] for k in idx))

    def describe(self) -> list[str]:
        c = count_cells(self.ops, self.nodes)
        lines = [f"{self.name}  ({self.family}, {self.nodes} nodes, {self.n_edges} edges, one "
                 f"cell type) - {self.description}",
                 f"    ops (every edge, alpha column order): {', '.join(self.ops)}",
                 f"    discrete cells: {c['cells']:,}; distinct after isomorphism "
                 f"{c['distinct_benchmark']:,} (the benchmark's convention), "
                 f"{c['distinct']:,} distinct functions ({c['zero']} cells compute zero); "
                 f"computed by enumeration"]
        if self.published_cells is not None or self.published_distinct is not None:
            def cmp(mine: int, pub: int | None) -> str:
                if pub is None:
                    return "-"
                return f"{pub:,} ({'matches' if pub == mine else 'differs'})"
            lines.append(f"    published: cells {cmp(c['cells'], self.published_cells)}, "
                         f"distinct {cmp(c['distinct_benchmark'], self.published_distinct)}"
                         + (f"; source: {self.published_source}" if self.published_source
                            else ""))
        return lines


def _req(cond: bool, file: str, field_: str, problem: str) -> None:
    if not cond:
        raise SpecError(file, field_, problem)


def parse_nb201_cell(data: dict[str, Any], file: str) -> Nb201Space:
    """An ``nb201-cell`` spec: ``nodes`` (>= 2, default 4), ``ops`` (default the benchmark's
    five, in its order), optional ``published_cells``, ``published_distinct``,
    ``published_source``, ``description``, ``source``."""
    extra = sorted(set(data) - _KEYS)
    _req(not extra, file, extra[0] if extra else "",
         f"unknown field; valid fields: {', '.join(sorted(_KEYS))}")
    nodes = data.get("nodes", 4)
    _req(isinstance(nodes, int) and not isinstance(nodes, bool) and 2 <= nodes <= 6, file,
         "nodes", f"must be an integer in 2..6 (NAS-Bench-201: 4), got {nodes!r}")
    ops = data.get("ops", list(NB201_OPS))
    _req(isinstance(ops, list) and len(ops) > 0, file, "ops",
         f"must be a non-empty list of NAS-Bench-201 ops, got {ops!r}")
    for i, op in enumerate(ops):
        _req(op in NB201_OPS, file, f"ops[{i}]",
             f"unknown op {op!r}; valid ops: {', '.join(NB201_OPS)}")
    _req(len(set(ops)) == len(ops), file, "ops", f"an op is listed twice: {ops}")
    for key in ("published_cells", "published_distinct"):
        v = data.get(key)
        _req(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0), file,
             key, f"must be a non-negative integer, got {v!r}")
    for key in ("description", "source", "published_source"):
        _req(isinstance(data.get(key, ""), str), file, key, "must be a string")
    return Nb201Space(name=data["name"], family=data["family"], nodes=nodes, ops=tuple(ops),
                      description=data.get("description", ""), source=data.get("source", ""),
                      published_cells=data.get("published_cells"),
                      published_distinct=data.get("published_distinct"),
                      published_source=data.get("published_source", ""), path=file)


__all__ = ["FAMILY", "Nb201Space", "parse_nb201_cell"]
