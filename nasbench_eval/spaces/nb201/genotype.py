"""Genotypes of the ``nb201-cell`` family: one op per edge of a densely connected cell, printed
and parsed as NAS-Bench-201's architecture string.

A cell has nodes ``0..n-1``; node 0 is the cell input, every later node sums one op applied to
each earlier node, and the last node is the cell output. Edges are numbered in the order of the
architecture string: target node first, then source (``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2`` for
NAS-Bench-201's 4 nodes), which is also the row order of the architecture weights.

``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``
reads: node 1 = conv3x3(node 0); node 2 = conv3x3(node 0) + avgpool(node 1); node 3 = ...
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import Any, ClassVar

from ..base import GenotypeError

FAMILY = "nb201-cell"
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""NAS-Bench-201's candidates, in its own order (the default alpha column order)."""
PARAMETER_FREE = frozenset({"none", "skip_connect", "avg_pool_3x3"})
KEY = "cell"
"""The architecture-weight key: one (edges, candidates) tensor shared by every cell."""
"""Candidates without weights: the collapse the DARTS-robustness papers track."""


def edge_list(nodes: int) -> tuple[tuple[int, int], ...]:
    """``(source, target)`` of every edge, in architecture-string order."""
    return tuple((s, t) for t in range(1, nodes) for s in range(t))


def nodes_for_edges(n_edges: int) -> int:
    """The node count whose dense cell has ``n_edges`` edges (a GenotypeError otherwise)."""
    n = 2
    while n * (n - 1) // 2 < n_edges:
        n += 1
    if n * (n - 1) // 2 != n_edges:
        raise GenotypeError(f"NAS-Bench-201 cell: {n_edges} ops do not fill a densely "
                            f"connected cell (1, 3, 6, 10, ... edges)")
    return n


@dataclass(frozen=True)
class Nb201Genotype:
    """One op per edge, in :func:`edge_list` order (``ops[e]`` is the op of edge ``e``)."""

    ops: tuple[str, ...]
    family: ClassVar[str] = FAMILY

    def __post_init__(self) -> None:
        nodes_for_edges(len(self.ops))
        for e, op in enumerate(self.ops):
            if op not in NB201_OPS:
                raise GenotypeError(f"NAS-Bench-201 cell: edge {e} has op {op!r}; valid ops: "
                                    f"{', '.join(NB201_OPS)}")

    @property
    def nodes(self) -> int:
        return nodes_for_edges(len(self.ops))

    def edges(self) -> tuple[tuple[int, int], ...]:
        return edge_list(self.nodes)

    # ------------------------------------------------------------------ strings
    def arch_str(self) -> str:
        """NAS-Bench-201's architecture string (what the benchmark's API is keyed by)."""
        parts, e = [], 0
        for t in range(1, self.nodes):
            parts.append("|" + "|".join(f"{self.ops[e + s]}~{s}" for s in range(t)) + "|")
            e += t
        return "+".join(parts)

    @classmethod
    def from_arch_str(cls, text: str) -> Nb201Genotype:
        """Parse an architecture string; the error names the malformed node or op."""
        if not isinstance(text, str) or not text.strip():
            raise GenotypeError("NAS-Bench-201 architecture string: empty")
        ops: list[str] = []
        for t, node in enumerate(text.strip().split("+"), start=1):
            items = [x for x in node.split("|") if x != ""]
            if len(items) != t:
                raise GenotypeError(f"NAS-Bench-201 architecture string {text!r}: node {t} "
                                    f"must have {t} input(s) '|op~j|', got {len(items)}")
            by_src: dict[int, str] = {}
            for item in items:
                op, sep, src = item.partition("~")
                if not sep or not src.isdigit():
                    raise GenotypeError(f"NAS-Bench-201 architecture string {text!r}: "
                                        f"{item!r} is not 'op~source'")
                by_src[int(src)] = op
            if sorted(by_src) != list(range(t)):
                raise GenotypeError(f"NAS-Bench-201 architecture string {text!r}: node {t} "
                                    f"must take each of nodes 0..{t - 1} once")
            ops += [by_src[s] for s in range(t)]
        return cls(tuple(ops))

    def __str__(self) -> str:
        return self.arch_str()

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {"family": FAMILY, "arch": self.arch_str(), "ops": list(self.ops)}

    @classmethod
    def from_dict(cls, d: Any) -> Nb201Genotype:
        """``{"arch": "|...|"}`` (``ops``, when also present, must agree), ``{"ops": [...]}``
        or a bare architecture string."""
        if isinstance(d, str):
            return cls.from_arch_str(d)
        if not isinstance(d, dict) or not ("arch" in d or "ops" in d):
            raise GenotypeError(f"not a NAS-Bench-201 genotype: it needs 'arch' (the "
                                f"architecture string) or 'ops'; got {d!r}")
        if "arch" in d:
            g = cls.from_arch_str(d["arch"])
            if "ops" in d and list(d["ops"]) != list(g.ops):
                raise GenotypeError(f"NAS-Bench-201 genotype: 'ops' {d['ops']} disagrees with "
                                    f"'arch' {d['arch']!r}")
            return g
        if not isinstance(d["ops"], list):
            raise GenotypeError(f"NAS-Bench-201 genotype: 'ops' must be a list, got "
                                f"{d['ops']!r}")
        return cls(tuple(str(o) for o in d["ops"]))

    # ------------------------------------------------------------------ metrics
    def param_free_fraction(self) -> float:
        """Share of the edges whose op has no weights (none, skip_connect, avg_pool_3x3)."""
        return sum(op in PARAMETER_FREE for op in self.ops) / len(self.ops)

    def metrics(self) -> dict[str, Any]:
        """Per-epoch collapse numbers: the parameter-free share (``param_free_normal``, the
        column every family provides), the skip connections and ``none`` edges, and the
        architecture string (so every epoch's cell can be looked up in a table)."""
        return {"param_free_normal": self.param_free_fraction(),
                "skip_connections": sum(op == "skip_connect" for op in self.ops),
                "none_edges": sum(op == "none" for op in self.ops),
                "nb201_arch": self.arch_str()}

    # ------------------------------------------------------------------ isomorphism
    def canonical(self) -> str:
        """A string equal for two cells exactly when they compute the same function of the
        input for every weight value, up to reordering the terms of a sum (see
        :func:`canonical_form`)."""
        return canonical_form(self.ops, self.nodes)


ZERO = "0"


def canonical_form(ops: tuple[str, ...], nodes: int, convention: str = "function") -> str:
    """Canonical expression of a cell's output (our own formulation of isomorphism).

    ``convention="function"``: every node is a multiset of summands; node 0 is ``{x}``; an
    edge with ``none``, or from a node that is identically zero, contributes nothing;
    ``skip_connect`` passes its source's summands through (sums are associative and
    commutative, so they are flattened); any other op contributes one summand
    ``op(<source's form>)``. A node without summands is zero. Two cells with equal forms
    compute the same function of the input for every weight value (ops with weights on
    different edges never merge: their weights are independent).

    ``convention="benchmark"``: the coarser rule behind NAS-Bench-201's published count of
    6,466 (NATS-Bench issue 43): a zero contribution stays in the sum as a placeholder term,
    a node whose sum has several terms is one opaque term where a skip connection passes it
    on (no flattening), and only a node made of a single zero term counts as zero. It
    separates cells that differ only by ``+ 0`` or by the bracketing of a sum, so it finds
    more classes than the functional rule. Because the terms are sorted as text and
    not flattened, the count depends on how a term is spelled; the spelling here (zero
    ``#``, ``(a)@op``) is the one under which 6,466 comes out, the count the benchmark's
    ``get_unique_str`` reports.
    """
    if convention not in ("function", "benchmark"):
        raise ValueError(f"convention must be 'function' or 'benchmark', got {convention!r}")
    edges = edge_list(nodes)
    if convention == "benchmark":
        forms = ["0"]  # node 0 is spelled by its number, zero by "#", op(a) as "(a)@op"
        for t in range(1, nodes):
            terms = []
            for e, (s, tt) in enumerate(edges):
                if tt != t:
                    continue
                if ops[e] == "none" or forms[s] == "#":
                    terms.append("#")
                elif ops[e] == "skip_connect":
                    terms.append(forms[s])
                else:
                    terms.append(f"({forms[s]})@{ops[e]}")
            forms.append("+".join(sorted(terms)))
        return forms[-1]
    summands: list[tuple[str, ...]] = [("x",)]
    for t in range(1, nodes):
        found: list[str] = []
        for e, (s, tt) in enumerate(edges):
            if tt != t or ops[e] == "none" or not summands[s]:
                continue
            if ops[e] == "skip_connect":
                found += summands[s]
            else:
                found.append(f"{ops[e]}({'+'.join(summands[s])})")
        summands.append(tuple(sorted(found)))
    out = summands[-1]
    return "+".join(out) if out else ZERO


ENUMERATED: dict[tuple[tuple[str, ...], int], dict[str, int]] = {
    (NB201_OPS, 4): {"cells": 15625, "distinct": 4930, "distinct_benchmark": 6466, "zero": 341},
}
"""What :func:`enumerate_cells` computes for the bundled space (ops, nodes), kept because the
enumeration takes half a second and ``nasbench-eval list spaces`` should not; any other
(ops, nodes) is enumerated when asked. ``tests/test_space_family.py`` enumerates each entry
again and compares."""


def count_cells(ops: tuple[str, ...], nodes: int) -> dict[str, int]:
    """The counts of :func:`enumerate_cells` (for the bundled space from :data:`ENUMERATED`)."""
    return dict(ENUMERATED.get((tuple(ops), nodes)) or enumerate_cells(tuple(ops), nodes))


@lru_cache(maxsize=None)
def enumerate_cells(ops: tuple[str, ...], nodes: int) -> dict[str, int]:
    """Enumerated over every assignment of an op to every edge: ``cells`` (all of them),
    ``distinct`` (distinct functional forms, :func:`canonical_form`), ``distinct_benchmark``
    (distinct forms under the benchmark's convention) and ``zero`` (cells whose output is
    identically zero)."""
    n_edges = nodes * (nodes - 1) // 2
    forms: set[str] = set()
    bench: set[str] = set()
    zero = cells = 0
    for assignment in product(ops, repeat=n_edges):
        f = canonical_form(assignment, nodes)
        forms.add(f)
        bench.add(canonical_form(assignment, nodes, "benchmark"))
        zero += f == ZERO
        cells += 1
    return {"cells": cells, "distinct": len(forms), "distinct_benchmark": len(bench),
            "zero": zero}


__all__ = ["ENUMERATED", "FAMILY", "KEY", "NB201_OPS", "PARAMETER_FREE", "Nb201Genotype",
           "canonical_form", "count_cells", "edge_list", "enumerate_cells", "nodes_for_edges"]
