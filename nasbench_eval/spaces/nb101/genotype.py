"""Genotypes of the ``nb101-cell`` family: what a NAS-Bench-1Shot1 derivation chose
(:class:`Nb101Genotype`), and a bare NAS-Bench-101 cell given as ``{"matrix", "ops"}`` JSON
(:class:`SpecGenotype`, for ``nasbench-eval evaluate --genotype``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import NasbenchEvalError
from ...nb101.graph import CONV1X1, INPUT, LABELS, MAXPOOL3X3, OUTPUT, ModelSpec

FAMILY = "nb101-cell"
DUMMY_OP = CONV1X1
PARAMETER_FREE = frozenset({MAXPOOL3X3})


# ============================================================================ genotype

@dataclass(frozen=True)
class Nb101Genotype:
    """A discrete cell of an ``nb101-cell`` space: what the derivation chose.

    ``ops[i - 1]`` is the op (a NAS-Bench-101 label) of block i, ``parents[i - 1]`` its parent
    nodes (sorted), ``output`` the output node's parents (sorted). Choices of blocks that do
    not feed the output are kept (so ``discrete_weights`` reproduces the derivation exactly),
    but they are not part of the NAS-Bench-101 cell (:meth:`to_model_spec`).
    """

    ops: tuple[str, ...]
    parents: tuple[tuple[int, ...], ...]
    output: tuple[int, ...]
    dummy_node: bool = False
    family: ClassVar[str] = FAMILY

    def __post_init__(self) -> None:
        n = len(self.ops)
        if len(self.parents) != n:
            raise NasbenchEvalError(f"nb101 genotype: {n} ops but {len(self.parents)} parent "
                                    f"lists")
        for i, ps in enumerate(self.parents, start=1):
            if not ps or any(not 0 <= p < i for p in ps) or len(set(ps)) != len(ps):
                raise NasbenchEvalError(f"nb101 genotype: block {i} has parents {list(ps)}; "
                                        f"they must be distinct nodes among 0..{i - 1}")
        if not self.output or any(not 0 <= p <= n for p in self.output) or \
                len(set(self.output)) != len(self.output):
            raise NasbenchEvalError(f"nb101 genotype: output parents {list(self.output)} must "
                                    f"be distinct nodes among 0..{n}")
        for i, op in enumerate(self.ops, start=1):
            if op not in LABELS:
                raise NasbenchEvalError(f"nb101 genotype: block {i} has op {op!r}; valid: "
                                        f"{', '.join(LABELS)}")

    @property
    def blocks(self) -> int:
        return len(self.ops)

    def used_blocks(self) -> tuple[int, ...]:
        """Blocks that are ancestors of the output (the walk back from the output)."""
        seen: set[int] = set()
        stack = [p for p in self.output if p > 0]
        while stack:
            b = stack.pop()
            if b in seen:
                continue
            seen.add(b)
            stack += [p for p in self.parents[b - 1] if p > 0]
        return tuple(sorted(seen))

    def unpruned_spec(self) -> ModelSpec:
        """The cell as NAS-Bench-1Shot1 writes it before pruning: edges only between the
        output's ancestors, every block's op, the dummy vertex (if any) before the output."""
        n = self.blocks
        v = n + 2 + int(self.dummy_node)
        out = v - 1
        m = [[0] * v for _ in range(v)]
        for p in self.output:
            m[p][out] = 1
        for b in self.used_blocks():
            for p in self.parents[b - 1]:
                m[p][b] = 1
        ops = [INPUT, *self.ops] + ([DUMMY_OP] if self.dummy_node else []) + [OUTPUT]
        return ModelSpec(m, ops)

    def to_model_spec(self) -> ModelSpec:
        """The pruned NAS-Bench-101 spec (what the table is keyed by)."""
        return self.unpruned_spec().pruned()

    def hash(self) -> str:
        return self.to_model_spec().hash()

    def param_free_fraction(self) -> float:
        """Share of the cell's used blocks (those feeding the output) that are maxpool3x3.

        0.0 for a cell without any used block (the output fed by the input alone)."""
        used = self.used_blocks()
        if not used:
            return 0.0
        return sum(self.ops[b - 1] in PARAMETER_FREE for b in used) / len(used)

    def metrics(self) -> dict[str, Any]:
        """Per-epoch numbers the runner records: the NAS-Bench-101 hash of the cell, its
        size after pruning and the parameter-free fraction (as ``param_free_normal``, the
        column the DARTS-cell analysis reads)."""
        spec = self.to_model_spec()
        return {"nb101_hash": spec.hash(), "nb101_vertices": spec.num_vertices,
                "nb101_edges": spec.num_edges, "param_free_normal": self.param_free_fraction()}

    def to_dict(self) -> dict[str, Any]:
        spec = self.to_model_spec()
        return {"family": FAMILY, "ops": list(self.ops),
                "parents": [list(p) for p in self.parents], "output": list(self.output),
                "dummy_node": self.dummy_node,
                # derived, for readers of genotypes.jsonl; from_dict ignores them
                "nb101": {**spec.to_dict(), "hash": spec.hash()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Nb101Genotype:
        try:
            return cls(ops=tuple(str(o) for o in d["ops"]),
                       parents=tuple(tuple(sorted(int(p) for p in ps)) for ps in d["parents"]),
                       output=tuple(sorted(int(p) for p in d["output"])),
                       dummy_node=bool(d.get("dummy_node", False)))
        except (KeyError, TypeError, ValueError) as exc:
            raise NasbenchEvalError(f"not an nb101-cell genotype ({exc!r}): it needs 'ops', "
                                    f"'parents' and 'output'; got keys {sorted(d)}") from None

    def __str__(self) -> str:
        short = {"conv3x3-bn-relu": "conv3x3", "conv1x1-bn-relu": "conv1x1",
                 "maxpool3x3": "maxpool3x3"}
        used = set(self.used_blocks())
        parts = [f"{i}:{short[op]}<-{','.join(map(str, ps))}" + ("" if i in used else "(unused)")
                 for i, (op, ps) in enumerate(zip(self.ops, self.parents), start=1)]
        return f"[{' '.join(parts)}] out<-{','.join(map(str, self.output))} hash {self.hash()}"


@dataclass(frozen=True)
class SpecGenotype:
    """A bare NAS-Bench-101 cell given as ``{"matrix": ..., "ops": ...}`` JSON."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    family: ClassVar[str] = FAMILY

    def to_model_spec(self) -> SpecGenotype:
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"matrix": [list(r) for r in self.matrix], "ops": list(self.ops)}

    def metrics(self) -> dict[str, Any]:
        """Parameter-free share of the cell's interior vertices (ops other than in/output)."""
        inner = self.ops[1:-1]
        return {"param_free_normal": (sum(o in PARAMETER_FREE for o in inner) / len(inner)
                                      if inner else 0.0)}

    def __str__(self) -> str:
        return f"matrix {[list(r) for r in self.matrix]} ops {list(self.ops)}"


__all__ = ["DUMMY_OP", "FAMILY", "PARAMETER_FREE", "Nb101Genotype", "SpecGenotype"]
