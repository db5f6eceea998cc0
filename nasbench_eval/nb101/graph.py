"""NAS-Bench-101 cell specs: adjacency matrix + op labels, validity, pruning, module hash.

A cell is a DAG whose vertices are in topological order: vertex 0 is the ``input``, the last
vertex the ``output``, every other vertex carries one op label (``conv3x3-bn-relu``,
``conv1x1-bn-relu``, ``maxpool3x3``). ``matrix[i][j] == 1`` is an edge i -> j (so the matrix
is strictly upper triangular).

NAS-Bench-101's rules, as implemented here:

* **pruning** keeps exactly the vertices that lie on some input -> output path (reachable from
  the input *and* reaching the output) and deletes the others' rows, columns and labels,
  keeping the order of the rest. A graph whose input does not reach the output has no pruned
  form (NAS-Bench-101 marks it invalid).
* **validity** (:meth:`ModelSpec.is_valid`): the input reaches the output, and the *pruned*
  graph has at most 7 vertices and at most 9 edges; the first label is ``input``, the last
  ``output``, every other one of the three op labels.
* **module hash** (:func:`module_hash`, :meth:`ModelSpec.hash`): integer labels input -1,
  output -2, conv3x3 0, conv1x1 1, maxpool3x3 2. Each vertex starts with the MD5 hex digest of
  the text of the tuple ``(out_degree, in_degree, label)``; then, as many rounds as there are
  vertices, every vertex at once becomes the MD5 of its in-neighbours' digests (sorted,
  joined), ``|``, its out-neighbours' digests (sorted, joined), ``|``, its own digest. The
  fingerprint is the MD5 of the text of the sorted list of digests. :meth:`ModelSpec.hash`
  hashes the pruned spec, as the table is keyed.

Degrees are always computed on Python ``int``s: a float matrix would print ``(2.0, 0.0, -1)``
and give another hash (the NAS-Bench-101 API's known ``KeyError`` on float matrices). Any
matrix of zeros and ones (bool, int, float, numpy, torch, nested lists) is accepted and
converted.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import NasbenchEvalError

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
LABELS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
"""The op labels in NAS-Bench-101's order: their index is the integer label the hash uses."""
MAX_VERTICES = 7
MAX_EDGES = 9
INPUT_LABEL = -1
OUTPUT_LABEL = -2


class GraphError(NasbenchEvalError, ValueError):
    """A NAS-Bench-101 spec is malformed, invalid, or cannot be pruned / hashed."""


# ----------------------------------------------------------------------------- helpers

def _int_rows(matrix: Any) -> tuple[tuple[int, ...], ...]:
    """The matrix as a tuple of rows of Python ints 0/1; any other shape or value is an error."""
    if isinstance(matrix, (list, tuple)) and all(
            isinstance(r, (list, tuple)) and len(r) == len(matrix) for r in matrix) and all(
            type(x) is int and (x == 0 or x == 1) for r in matrix for x in r):
        return tuple(tuple(r) for r in matrix)  # fast path: nested lists of ints 0/1
    if hasattr(matrix, "detach"):  # a torch tensor
        matrix = matrix.detach().cpu().numpy()
    try:
        arr = np.asarray(matrix)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise GraphError(f"adjacency matrix is not a rectangular array: {exc}") from None
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise GraphError(f"adjacency matrix must be square, got shape {tuple(arr.shape)}")
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == np.bool_):
        raise GraphError(f"adjacency matrix must hold numbers 0/1, got dtype {arr.dtype}")
    ones = arr == 1
    if not np.all(ones | (arr == 0)):
        bad = np.argwhere(~(ones | (arr == 0)))[0]
        raise GraphError(f"adjacency matrix entries must be 0 or 1, got {arr[tuple(bad)]!r} at "
                         f"[{bad[0]}, {bad[1]}]")
    return tuple(tuple(int(x) for x in row) for row in ones.astype(np.int64))


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def module_hash(matrix: Any, labels: Sequence[int]) -> str:
    """NAS-Bench-101's graph-invariant fingerprint of ``matrix`` with integer ``labels``.

    The graph is hashed as given (prune first: :meth:`ModelSpec.hash` does). ``labels`` are
    the integer labels (input -1, output -2, ops 0-2); entries are used as Python ints.
    """
    rows = _int_rows(matrix)
    v = len(rows)
    labels = [int(x) for x in labels]
    if len(labels) != v:
        raise GraphError(f"{len(labels)} labels for a {v}x{v} matrix")
    preds = [[u for u in range(v) if rows[u][w]] for w in range(v)]
    succs = [[w for w in range(v) if rows[u][w]] for u in range(v)]
    digests = [_md5(str((len(succs[i]), len(preds[i]), labels[i]))) for i in range(v)]
    for _ in range(v):
        digests = [_md5("".join(sorted(digests[u] for u in preds[i])) + "|"
                        + "".join(sorted(digests[w] for w in succs[i])) + "|" + digests[i])
                   for i in range(v)]
    return _md5(str(sorted(digests)))


# ----------------------------------------------------------------------------- the spec

class ModelSpec:
    """A NAS-Bench-101 cell: ``ModelSpec(matrix, ops)``.

    The constructor checks the structure (square 0/1 matrix, strictly upper triangular, one
    label string per vertex, at least 2 vertices) and raises :class:`GraphError` otherwise;
    the benchmark's limits and labels are checked by :meth:`is_valid` / :meth:`problems`, as
    NAS-Bench-101 does. Instances are immutable, compare and hash by (matrix, ops).
    """

    __slots__ = ("_rows", "_ops")

    def __init__(self, matrix: Any, ops: Sequence[str]):
        rows = _int_rows(matrix)
        if isinstance(ops, str):
            raise GraphError(f"ops must be a list of labels, got the string {ops!r}")
        ops = tuple(ops)
        v = len(rows)
        if len(ops) != v:
            raise GraphError(f"{len(ops)} op labels for a {v}x{v} adjacency matrix")
        if v < 2:
            raise GraphError(f"a cell needs at least the input and the output vertex, got {v}")
        for i, op in enumerate(ops):
            if not isinstance(op, str):
                raise GraphError(f"op label {i} must be a string, got {op!r}")
        for i in range(v):
            for j in range(i + 1):
                if rows[i][j]:
                    raise GraphError(
                        f"adjacency matrix must be strictly upper triangular (vertices in "
                        f"topological order), but entry [{i}, {j}] is 1")
        self._rows = rows
        self._ops = ops

    @classmethod
    def _trusted(cls, rows: tuple[tuple[int, ...], ...], ops: tuple[str, ...]) -> ModelSpec:
        """Without the checks, for rows/ops derived from an already checked spec."""
        spec = cls.__new__(cls)
        spec._rows, spec._ops = rows, ops
        return spec

    # ------------------------------------------------------------------ views
    @property
    def matrix(self) -> np.ndarray:
        """A fresh ``int64`` copy of the adjacency matrix."""
        return np.array(self._rows, dtype=np.int64).reshape(len(self._rows), len(self._rows))

    @property
    def rows(self) -> tuple[tuple[int, ...], ...]:
        return self._rows

    @property
    def ops(self) -> tuple[str, ...]:
        return self._ops

    @property
    def num_vertices(self) -> int:
        return len(self._rows)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self._rows))

    def labels(self) -> list[int]:
        """Integer labels for the hash: input -1, output -2, ops by their index in LABELS."""
        ops = self._ops
        if ops[0] != INPUT or ops[-1] != OUTPUT:
            raise GraphError(f"the first label must be '{INPUT}' and the last '{OUTPUT}', got "
                             f"{ops[0]!r} ... {ops[-1]!r}")
        out = [INPUT_LABEL]
        for i, op in enumerate(ops[1:-1], start=1):
            if op not in LABELS:
                raise GraphError(f"vertex {i} has label {op!r}; interior vertices take one of "
                                 f"{', '.join(LABELS)}")
            out.append(LABELS.index(op))
        return out + [OUTPUT_LABEL]

    # ------------------------------------------------------------------ pruning
    def _kept(self) -> list[int] | None:
        """Vertices on an input -> output path, in order; None when the input does not reach
        the output."""
        rows, v = self._rows, len(self._rows)
        from_input = {0}
        stack = [0]
        while stack:
            u = stack.pop()
            for w in range(u + 1, v):
                if rows[u][w] and w not in from_input:
                    from_input.add(w)
                    stack.append(w)
        to_output = {v - 1}
        stack = [v - 1]
        while stack:
            w = stack.pop()
            for u in range(w):
                if rows[u][w] and u not in to_output:
                    to_output.add(u)
                    stack.append(u)
        kept = sorted(from_input & to_output)
        return kept if kept else None

    def input_reaches_output(self) -> bool:
        return self._kept() is not None

    def pruned(self) -> ModelSpec:
        """The spec without vertices off every input -> output path (NAS-Bench-101's rule).

        Raises :class:`GraphError` when the input does not reach the output.
        """
        kept = self._kept()
        if kept is None:
            raise GraphError("the input does not reach the output: the cell has no pruned form "
                             "(NAS-Bench-101 treats it as invalid)")
        if len(kept) == len(self._rows):
            return self
        rows = tuple(tuple(self._rows[i][j] for j in kept) for i in kept)
        return ModelSpec._trusted(rows, tuple(self._ops[i] for i in kept))

    # ------------------------------------------------------------------ validity
    def problems(self) -> list[str]:
        """Why this spec is not a valid NAS-Bench-101 cell (empty when it is)."""
        out: list[str] = []
        if self._ops[0] != INPUT:
            out.append(f"first label must be '{INPUT}', got {self._ops[0]!r}")
        if self._ops[-1] != OUTPUT:
            out.append(f"last label must be '{OUTPUT}', got {self._ops[-1]!r}")
        for i, op in enumerate(self._ops[1:-1], start=1):
            if op not in LABELS:
                out.append(f"vertex {i} has label {op!r}, not one of {', '.join(LABELS)}")
        kept = self._kept()
        if kept is None:
            out.append("the input does not reach the output")
            return out
        p = self.pruned()
        if p.num_vertices > MAX_VERTICES:
            out.append(f"{p.num_vertices} vertices after pruning, at most {MAX_VERTICES} allowed")
        if p.num_edges > MAX_EDGES:
            out.append(f"{p.num_edges} edges after pruning, at most {MAX_EDGES} allowed")
        return out

    def is_valid(self) -> bool:
        return not self.problems()

    def validate(self) -> ModelSpec:
        """``self`` when valid, else :class:`GraphError` listing every problem."""
        problems = self.problems()
        if problems:
            raise GraphError("invalid NAS-Bench-101 spec: " + "; ".join(problems))
        return self

    # ------------------------------------------------------------------ hash
    def hash(self) -> str:
        """The NAS-Bench-101 module hash (32 hex digits) of the pruned spec."""
        p = self.pruned()
        return module_hash(p._rows, p.labels())

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return {"matrix": [list(r) for r in self._rows], "ops": list(self._ops)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        try:
            return cls(d["matrix"], d["ops"])
        except (KeyError, TypeError):
            raise GraphError(f"a spec dict needs 'matrix' and 'ops', got {d!r}") from None

    def adjacency_string(self) -> str:
        """Row-major '0'/'1' text of the matrix, as the NAS-Bench-101 records store it."""
        return "".join(str(x) for row in self._rows for x in row)

    @classmethod
    def from_strings(cls, adjacency: str, ops: str) -> ModelSpec:
        """From the record form: row-major '0'/'1' text and comma-separated labels."""
        n = len(adjacency)
        v = int(round(n ** 0.5))
        if v * v != n or set(adjacency) - {"0", "1"}:
            raise GraphError(f"adjacency text must be a square number of '0'/'1' characters, "
                             f"got {adjacency!r}")
        rows = [[int(adjacency[i * v + j]) for j in range(v)] for i in range(v)]
        return cls(rows, ops.split(","))

    # ------------------------------------------------------------------ dunder
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelSpec):
            return NotImplemented
        return self._rows == other._rows and self._ops == other._ops

    def __hash__(self) -> int:
        return hash((self._rows, self._ops))

    def __repr__(self) -> str:
        return f"ModelSpec(matrix={[list(r) for r in self._rows]}, ops={list(self._ops)})"


# ----------------------------------------------------------------------------- batch hashing

def _relabel(rows: np.ndarray) -> np.ndarray:
    """Dense ids of the distinct rows of a 2-D non-negative int array (equal rows, equal id)."""
    key = np.zeros(len(rows), dtype=np.int64)
    if len(rows) == 0:
        return key
    bound = 1
    maxima = rows.max(axis=0).tolist()
    for c in range(rows.shape[1]):
        col = rows[:, c]
        m = int(maxima[c]) + 1
        if bound * m >= 2 ** 62:  # compress before the packed key could overflow
            key = np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)
            bound = int(key.max()) + 1 if len(key) else 1
        key = key * m + col
        bound *= m
    return np.unique(key, return_inverse=True)[1].reshape(-1).astype(np.int64)


def hash_classes(adjacency: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Class ids of a batch of graphs such that two graphs share an id exactly when their
    :func:`module_hash` digests are equal (given that MD5 does not collide on them).

    ``adjacency`` is (N, V, V) 0/1, ``labels`` (N, V) integer labels, one vertex count V for
    the whole batch (graphs with different V never share a hash). It runs the same refinement
    as :func:`module_hash` - V rounds, each vertex's new colour determined by the multiset of
    its in-neighbours' colours, that of its out-neighbours' and its own - but with colours
    numbered densely over the whole batch instead of MD5 digests, vectorised with numpy.
    Because the MD5 step is injective on its inputs (fixed-width hex digests, '|' separators),
    equal digests after each round correspond one to one with equal colours.
    """
    a = np.asarray(adjacency).astype(bool)
    lab = np.asarray(labels, dtype=np.int64)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or lab.shape != a.shape[:2]:
        raise GraphError(f"hash_classes needs adjacency (N, V, V) and labels (N, V), got "
                         f"{a.shape} and {lab.shape}")
    n, v, _ = a.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.stack([a.sum(2), a.sum(1), lab - lab.min()], axis=-1).reshape(n * v, 3)
    colour = _relabel(first).reshape(n, v)
    classes = int(colour.max()) + 1
    a_t = a.transpose(0, 2, 1)
    for _ in range(v):
        c = colour[:, None, :]
        ins = np.sort(np.where(a_t, c, -1), axis=2)  # [n, v, u] = colour of u if u -> v
        outs = np.sort(np.where(a, c, -1), axis=2)   # [n, v, w] = colour of w if v -> w
        key = np.concatenate([ins + 1, outs + 1, colour[:, :, None]], axis=2)
        colour = _relabel(key.reshape(n * v, 2 * v + 1)).reshape(n, v)
        # a round only refines (the own colour is part of the key); once it splits no class,
        # the partition is stable and the remaining rounds would not change it either
        new_classes = int(colour.max()) + 1
        if new_classes == classes:
            break
        classes = new_classes
    return _relabel(np.sort(colour, axis=1))
