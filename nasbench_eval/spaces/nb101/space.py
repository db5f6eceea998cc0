"""The ``nb101-cell`` family: NAS-Bench-1Shot1 search spaces over NAS-Bench-101 cells.

A cell has an input (node 0), ``blocks`` choice blocks (nodes 1..blocks) and an output node.
Every choice block takes exactly ``parents`` inputs chosen among the lower-numbered nodes
(or a ``fixed`` set) and applies one op; the output node takes ``output_parents`` inputs
chosen among the input and all blocks. See ``spaces/nb1shot1-*.toml`` and
``docs/nasbench1shot1.md``.

Architecture weights (every method mixes them row by row, so DARTS, SDARTS and Max-W work
unchanged):

* ``ops``: (blocks, len(ops)) - one row per block, columns in the spec's ``ops`` order (the
  one-shot code's order maxpool3x3, conv3x3, conv1x1 for the shipped spaces);
* ``output``: (1, blocks + 1) - the output node's candidate parents, column j = node j;
* ``parents_<i>``: (1, i) - one per block i whose parents are not fixed, column j = node j.

Derivation (NAS-Bench-1Shot1's mapping): argmax op per block, the top-k weights of each
parents row and of the output row (ties: lower node), then only the ancestors of the output
keep their edges; spaces with ``dummy_node`` insert an edgeless ``conv1x1-bn-relu`` vertex
before the output so the raw cell has NAS-Bench-101's 7 vertices; pruning (NAS-Bench-101's
rule) removes it and the loose ends.
"""
from __future__ import annotations
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations, permutations, product
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import NasbenchEvalError, SpecError, did_you_mean
from ...lazy_torch import torch
from ...nb101.graph import LABELS, MAX_EDGES, MAX_VERTICES, hash_classes
from .genotype import FAMILY, Nb101Genotype

if TYPE_CHECKING:
    from torch import Tensor

_TOP_KEYS = {"name", "family", "description", "source", "ops", "blocks", "output_parents",
             "dummy_node", "published_size"}
_BLOCK_KEYS = {"parents", "fixed"}


# ============================================================================ the space

@dataclass(frozen=True)
class Nb101CellSpace:
    """A validated ``nb101-cell`` space (see the module docstring)."""

    name: str
    family: str
    ops: tuple[str, ...]
    block_parents: tuple[int, ...]
    """Number of parents of block i (index i - 1)."""
    fixed: tuple[tuple[int, ...] | None, ...]
    """Fixed parent set of block i, or None when the parents are searched."""
    output_parents: int
    dummy_node: bool = False
    published_size: int | None = None
    description: str = ""
    source: str = ""
    path: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    # ------------------------------------------------------------------ structure
    @property
    def blocks(self) -> int:
        return len(self.block_parents)

    @property
    def num_ops(self) -> int:
        return len(self.ops)

    def candidates(self, node: int) -> tuple[int, ...]:
        """Possible parents of block ``node`` (1-based): the fixed set, else nodes 0..node-1."""
        f = self.fixed[node - 1]
        return f if f is not None else tuple(range(node))

    def free_blocks(self) -> list[int]:
        """Blocks whose parents are searched (they have a ``parents_<i>`` weight row)."""
        return [i for i in range(1, self.blocks + 1) if self.fixed[i - 1] is None]

    def arch_shapes(self) -> dict[str, tuple[int, int]]:
        shapes = {"ops": (self.blocks, self.num_ops), "output": (1, self.blocks + 1)}
        for i in self.free_blocks():
            shapes[f"parents_{i}"] = (1, i)
        return shapes

    # ------------------------------------------------------------------ family interface
    def build_supernet(self, channels: int, layers: int, num_classes: int, in_channels: int):
        from .supernet import Nb101OneShot

        return Nb101OneShot(self, channels, layers, num_classes, in_channels)

    def derive(self, weights: dict[str, Any]) -> Nb101Genotype:
        """NAS-Bench-1Shot1's mapping of architecture weights to a discrete cell."""
        self._check_weights(weights)
        w_ops = weights["ops"].detach().float().cpu()
        ops = tuple(self.ops[_argmax(w_ops[i].tolist())] for i in range(self.blocks))
        parents = []
        for i in range(1, self.blocks + 1):
            f = self.fixed[i - 1]
            if f is not None:
                parents.append(f)
            else:
                row = weights[f"parents_{i}"].detach().float().cpu()[0].tolist()
                parents.append(_top_k(row, self.block_parents[i - 1]))
        row = weights["output"].detach().float().cpu()[0].tolist()
        return Nb101Genotype(ops=ops, parents=tuple(parents),
                             output=_top_k(row, self.output_parents), dummy_node=self.dummy_node)

    def discrete_weights(self, genotype: Any, device: Any = "cpu") -> dict[str, Tensor]:
        """k-hot weights that make the one-shot model compute ``genotype``: one-hot op rows,
        1 on every chosen parent (a block sums its parents, as in NAS-Bench-101) and on every
        chosen output parent."""
        g = self.check_genotype(genotype)
        shapes = self.arch_shapes()
        w = {k: torch.zeros(*s, device=device) for k, s in shapes.items()}
        for i, op in enumerate(g.ops):
            w["ops"][i, self.ops.index(op)] = 1.0
        for i in self.free_blocks():
            for p in g.parents[i - 1]:
                w[f"parents_{i}"][0, p] = 1.0
        for p in g.output:
            w["output"][0, p] = 1.0
        return w

    def sample_genotype(self, generator: torch.Generator) -> Nb101Genotype:
        """A genotype drawn uniformly from the space's combinations (parent configuration x
        op assignment: every block's parent set, the output's parents and every op uniform
        and independent). Distinct NAS-Bench-101 cells are not equally likely (many
        combinations map to one cell). ``generator``: a CPU ``torch.Generator``."""
        def draw(n: int) -> int:
            return int(torch.randint(n, (1,), generator=generator))

        ops = tuple(self.ops[draw(self.num_ops)] for _ in range(self.blocks))
        parents = []
        for i, k in enumerate(self.block_parents, start=1):
            f = self.fixed[i - 1]
            options = [f] if f is not None else list(combinations(range(i), k))
            parents.append(options[draw(len(options))])
        outputs = list(combinations(range(self.blocks + 1), self.output_parents))
        return Nb101Genotype(ops=ops, parents=tuple(parents), output=outputs[draw(len(outputs))],
                             dummy_node=self.dummy_node)

    def genotype_from_dict(self, d: dict[str, Any]) -> Nb101Genotype:
        return self.check_genotype(Nb101Genotype.from_dict(d))

    def check_genotype(self, g: Any) -> Nb101Genotype:
        """``g`` when it is a cell of this space, else a clear error."""
        if not isinstance(g, Nb101Genotype):
            raise NasbenchEvalError(f"space '{self.name}' ({FAMILY}) cannot use a genotype of "
                                    f"type {type(g).__name__}")
        where = f"genotype for space '{self.name}'"
        if g.blocks != self.blocks:
            raise NasbenchEvalError(f"{where}: {g.blocks} blocks, the space has {self.blocks}")
        for i, op in enumerate(g.ops, start=1):
            if op not in self.ops:
                raise NasbenchEvalError(f"{where}: block {i} op {op!r} is not a candidate "
                                        f"({', '.join(self.ops)})")
        for i, ps in enumerate(g.parents, start=1):
            k, cand = self.block_parents[i - 1], self.candidates(i)
            if len(ps) != k or not set(ps) <= set(cand):
                raise NasbenchEvalError(f"{where}: block {i} needs {k} parent(s) among "
                                        f"{list(cand)}, got {list(ps)}")
        if len(g.output) != self.output_parents:
            raise NasbenchEvalError(f"{where}: the output needs {self.output_parents} parents, "
                                    f"got {list(g.output)}")
        if g.dummy_node != self.dummy_node:
            raise NasbenchEvalError(f"{where}: dummy_node is {g.dummy_node}, the space says "
                                    f"{self.dummy_node}")
        return g

    def describe(self) -> list[str]:
        """Lines for ``nasbench-eval list spaces``; every count is computed from the spec."""
        c = count_cells(self)
        parents = ", ".join(
            f"n{i}: {k} of {{{','.join(map(str, self.candidates(i)))}}}"
            + (" (fixed)" if self.fixed[i - 1] is not None else "")
            for i, k in enumerate(self.block_parents, start=1))
        published = ""
        if self.published_size is not None:
            rule = ("the outgoing-edge sum" if self.published_size == c["nominal_outgoing"]
                    else "configurations x ops^blocks" if self.published_size == c["combinations"]
                    else "neither rule")
            published = f"; published {self.published_size:,} (= {rule})"
        lines = [f"{self.name}  ({self.family}, {self.blocks} choice blocks"
                 f"{', dummy node' if self.dummy_node else ''}) - {self.description}",
                 f"    ops (alpha column order): {', '.join(self.ops)}",
                 f"    parents: {parents}; output: {self.output_parents} of "
                 f"{{0..{self.blocks}}}",
                 f"    distinct NAS-Bench-101 cells (hashes after mapping and pruning): "
                 f"{c['distinct']:,} of {c['combinations']:,} parent configurations x op "
                 f"assignments ({c['invalid']} invalid)",
                 f"    nominal sizes: {c['configurations']:,} parent configurations; sum over "
                 f"them of {self.num_ops}^(blocks with an outgoing edge) = "
                 f"{c['nominal_outgoing']:,}; x {self.num_ops}^{self.blocks} = "
                 f"{c['combinations']:,}{published}"]
        return lines

    # ------------------------------------------------------------------ helpers
    def _check_weights(self, weights: dict[str, Any]) -> None:
        for k, shape in self.arch_shapes().items():
            if k not in weights:
                raise NasbenchEvalError(f"space '{self.name}': architecture weights lack "
                                        f"'{k}' (have {sorted(weights)})")
            if tuple(weights[k].shape) != shape:
                raise NasbenchEvalError(f"space '{self.name}': weights '{k}' have shape "
                                        f"{tuple(weights[k].shape)}, expected {shape}")


def _argmax(row: list[float]) -> int:
    """Index of the largest entry; ties keep the lower index."""
    return max(range(len(row)), key=lambda j: (row[j], -j))


def _top_k(row: list[float], k: int) -> tuple[int, ...]:
    """Indices of the k largest entries (ties: lower index first), sorted ascending."""
    return tuple(sorted(sorted(range(len(row)), key=lambda j: (-row[j], j))[:k]))


# ============================================================================ counting

def parent_configurations(space: Nb101CellSpace):
    """Every (per-block parent sets, output parents) the space allows."""
    per_block = [[space.fixed[i - 1]] if space.fixed[i - 1] is not None
                 else list(combinations(range(i), k))
                 for i, k in enumerate(space.block_parents, start=1)]
    outputs = list(combinations(range(space.blocks + 1), space.output_parents))
    for ps in product(*per_block):
        for out in outputs:
            yield ps, out


def _structure_key(space: Nb101CellSpace) -> tuple:
    return (space.ops, space.block_parents, space.fixed, space.output_parents, space.dummy_node)


_NB1SHOT1_OPS = ("maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu")
ENUMERATED: dict[tuple, dict[str, int]] = {
    # nb1shot1-1
    (_NB1SHOT1_OPS, (1, 2, 2, 2), ((0,), (0, 1), None, None), 2, True):
        {"configurations": 180, "combinations": 14580, "nominal_outgoing": 6240,
         "nominal_used": 5508, "distinct": 2685, "invalid": 0},
    # nb1shot1-2
    (_NB1SHOT1_OPS, (1, 1, 2, 2), ((0,), None, None, None), 3, True):
        {"configurations": 360, "combinations": 29160, "nominal_outgoing": 16632,
         "nominal_used": 16038, "distinct": 7773, "invalid": 0},
    # nb1shot1-3
    (_NB1SHOT1_OPS, (1, 1, 1, 2, 2), ((0,), None, None, None, None), 2, False):
        {"configurations": 5400, "combinations": 1312200, "nominal_outgoing": 363648,
         "nominal_used": 265860, "distinct": 55854, "invalid": 0},
}
"""What :func:`_count_cells` computes for the bundled spaces' structures (their
:func:`_structure_key`), kept because the enumeration takes seconds and ``nasbench-eval list
spaces`` should not; any other structure is enumerated when asked. ``tests/test_space_family.py``
enumerates each entry again and compares."""


@lru_cache(maxsize=None)
def _count_cells(key: tuple) -> dict[str, int]:
    ops, block_parents, fixed, output_parents, dummy = key
    space = Nb101CellSpace(name="", family=FAMILY, ops=ops, block_parents=block_parents,
                           fixed=fixed, output_parents=output_parents, dummy_node=dummy)
    n_ops, blocks = len(ops), len(block_parents)
    configurations = nominal_outgoing = nominal_used = invalid = 0
    matrices: dict[int, set[bytes]] = {}  # pruned vertex count -> distinct pruned matrices
    placeholder = ops[0]
    for ps, out in parent_configurations(space):
        configurations += 1
        g = Nb101Genotype(ops=(placeholder,) * blocks, parents=ps, output=out, dummy_node=dummy)
        with_out_edge = {p for p in out if p > 0} | {p for q in ps for p in q if p > 0}
        nominal_outgoing += n_ops ** len(with_out_edge)
        nominal_used += n_ops ** len(g.used_blocks())
        spec = g.to_model_spec()  # pruned: the input reaches the output
        if spec.num_vertices > MAX_VERTICES or spec.num_edges > MAX_EDGES:
            invalid += n_ops ** blocks
            continue
        matrices.setdefault(spec.num_vertices, set()).add(spec.matrix.astype(np.uint8).tobytes())
    label_of = [LABELS.index(o) for o in ops]
    distinct = 0
    for v, mats in sorted(matrices.items()):
        adj = _isomorphism_representatives(
            np.frombuffer(b"".join(sorted(mats)), dtype=np.uint8).reshape(-1, v, v))
        inner = v - 2
        assign = np.array(list(product(label_of, repeat=inner)), dtype=np.int64).reshape(-1, inner)
        n_m, n_a = len(adj), len(assign)
        labels = np.empty((n_m, n_a, v), dtype=np.int64)
        labels[:, :, 0], labels[:, :, -1] = -1, -2
        labels[:, :, 1:-1] = assign[None]
        classes = hash_classes(np.repeat(adj, n_a, axis=0), labels.reshape(-1, v))
        distinct += len(np.unique(classes))
    return {"configurations": configurations, "combinations": configurations * n_ops ** blocks,
            "nominal_outgoing": nominal_outgoing, "nominal_used": nominal_used,
            "distinct": distinct, "invalid": invalid}


def _isomorphism_representatives(adj: np.ndarray) -> np.ndarray:
    """One matrix per isomorphism class (permutations fixing input and output) of ``adj``.

    Every labeling of the interior is enumerated for each kept matrix, so dropping a matrix
    isomorphic to a kept one loses no hash: its labeled graphs are isomorphic to labeled
    graphs of the kept one (same hashes). Exact, by brute force over the (V-2)! orders.
    """
    m, v, _ = adj.shape
    weights = (np.int64(1) << np.arange(v * v, dtype=np.int64)).reshape(v, v)
    best = None
    for perm in permutations(range(1, v - 1)):
        p = [0, *perm, v - 1]
        code = (adj[:, p][:, :, p].astype(np.int64) * weights).sum(axis=(1, 2))
        best = code if best is None else np.minimum(best, code)
    _, first = np.unique(best, return_index=True)
    return adj[np.sort(first)]


def count_cells(space: Nb101CellSpace) -> dict[str, int]:
    """Sizes of ``space``, all computed by enumeration (for the bundled spaces once, kept in
    :data:`ENUMERATED`):

    * ``configurations``: parent configurations (every block's and the output's choice);
    * ``combinations``: configurations x ops^blocks (every op of every block counted);
    * ``nominal_outgoing``: sum over configurations of ops^(blocks with an outgoing edge);
    * ``nominal_used``: sum over configurations of ops^(blocks feeding the output);
    * ``distinct``: distinct NAS-Bench-101 module hashes after mapping and pruning (hash
      equality computed by :func:`nasbench_eval.nb101.graph.hash_classes`);
    * ``invalid``: combinations whose mapped cell is not a valid NAS-Bench-101 spec.
    """
    key = _structure_key(space)
    return dict(ENUMERATED.get(key) or _count_cells(key))


# ============================================================================ parser

def _req(cond: bool, file: str, field_: str, problem: str) -> None:
    if not cond:
        raise SpecError(file, field_, problem)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_nb101_cell(data: dict[str, Any], file: str) -> Nb101CellSpace:
    """A NAS-Bench-101-cell space: ``ops``, ``[[blocks]]`` (``parents``, optional ``fixed``),
    ``output_parents``, optional ``dummy_node`` and ``published_size``."""
    extra = set(data) - _TOP_KEYS
    _req(not extra, file, sorted(extra)[0] if extra else "",
         f"unknown field; valid fields: {', '.join(sorted(_TOP_KEYS))}"
         + did_you_mean(sorted(extra)[0] if extra else "", _TOP_KEYS))
    for key in ("ops", "blocks", "output_parents"):
        _req(key in data, file, key, "missing (required)")

    ops = data["ops"]
    _req(isinstance(ops, list) and len(ops) > 0, file, "ops",
         f"must be a non-empty list of NAS-Bench-101 op labels, got {ops!r}")
    for i, op in enumerate(ops):
        _req(isinstance(op, str) and op in LABELS, file, f"ops[{i}]",
             f"unknown op {op!r}; valid ops: {', '.join(LABELS)}" + did_you_mean(op, LABELS))
    _req(len(set(ops)) == len(ops), file, "ops", f"an op is listed twice: {ops}")

    blocks = data["blocks"]
    _req(isinstance(blocks, list) and len(blocks) > 0, file, "blocks",
         "must be a non-empty array of tables ([[blocks]] with 'parents')")
    block_parents: list[int] = []
    fixed: list[tuple[int, ...] | None] = []
    for i, b in enumerate(blocks, start=1):
        where = f"blocks[{i - 1}]"
        _req(isinstance(b, dict), file, where, "must be a table with 'parents'")
        bad = set(b) - _BLOCK_KEYS
        _req(not bad, file, f"{where}.{sorted(bad)[0] if bad else ''}",
             f"unknown field; valid fields: {', '.join(sorted(_BLOCK_KEYS))}"
             + did_you_mean(sorted(bad)[0] if bad else "", _BLOCK_KEYS))
        _req("parents" in b, file, f"{where}.parents", "missing (required)")
        k = b["parents"]
        _req(_is_int(k) and 1 <= k <= i, file, f"{where}.parents",
             f"block {i} (node {i}) chooses among nodes 0..{i - 1}, so parents must be an "
             f"integer in 1..{i}, got {k!r}")
        f = b.get("fixed")
        if f is not None:
            _req(isinstance(f, list) and all(_is_int(p) for p in f), file, f"{where}.fixed",
                 f"must be a list of node numbers, got {f!r}")
            _req(len(f) == k, file, f"{where}.fixed",
                 f"lists {len(f)} node(s) but parents = {k}")
            _req(len(set(f)) == len(f) and all(0 <= p < i for p in f), file, f"{where}.fixed",
                 f"must be distinct nodes among 0..{i - 1}, got {f}")
            fixed.append(tuple(sorted(f)))
        elif k == i:  # every candidate is a parent: nothing to search
            fixed.append(tuple(range(i)))
        else:
            fixed.append(None)
        block_parents.append(k)
    n = len(block_parents)

    k_out = data["output_parents"]
    _req(_is_int(k_out) and 1 <= k_out <= n + 1, file, "output_parents",
         f"the output chooses among nodes 0..{n}, so output_parents must be an integer in "
         f"1..{n + 1}, got {k_out!r}")
    dummy = data.get("dummy_node", False)
    _req(isinstance(dummy, bool), file, "dummy_node", f"must be true or false, got {dummy!r}")
    vertices = n + 2 + int(dummy)
    _req(vertices <= MAX_VERTICES, file, "blocks",
         f"{n} blocks + input + output{' + dummy node' if dummy else ''} = {vertices} vertices; "
         f"NAS-Bench-101 allows at most {MAX_VERTICES}")
    edges = sum(block_parents) + k_out
    _req(edges <= MAX_EDGES, file, "output_parents",
         f"the parents of all blocks and of the output add up to {edges} edges; NAS-Bench-101 "
         f"allows at most {MAX_EDGES}")
    size = data.get("published_size")
    _req(size is None or (_is_int(size) and size >= 0), file, "published_size",
         f"must be a non-negative integer, got {size!r}")
    for key in ("description", "source"):
        _req(isinstance(data.get(key, ""), str), file, key, "must be a string")
    return Nb101CellSpace(name=data["name"], family=data["family"], ops=tuple(ops),
                          block_parents=tuple(block_parents), fixed=tuple(fixed),
                          output_parents=k_out, dummy_node=dummy, published_size=size,
                          description=data.get("description", ""),
                          source=data.get("source", ""), path=file)


__all__ = ["ENUMERATED", "Nb101CellSpace", "count_cells", "parent_configurations",
           "parse_nb101_cell"]

