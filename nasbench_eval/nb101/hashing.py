"""NAS-Bench-101 spec -> module hash: the key of the table, from a spec in any of the forms
users hold (our :class:`~.graph.ModelSpec`, a ``{"matrix", "ops"}`` dict, a pair, or another
library's spec object with ``matrix`` and ``ops``)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .graph import ModelSpec

__all__ = ["spec_from_any", "spec_hash"]

_ALIASES = {"conv3x3": "conv3x3-bn-relu", "conv1x1": "conv1x1-bn-relu",
            "maxpool": "maxpool3x3", "max_pool_3x3": "maxpool3x3"}


def spec_from_any(spec: Any) -> tuple[Any, list[str]]:
    """(matrix, ops) of a spec: a :class:`~.graph.ModelSpec`, a ``{"matrix", "ops"}`` dict, a
    ``(matrix, ops)`` pair, or another library's spec object.

    Short op names (``conv3x3``, ``conv1x1``) are accepted for the NAS-Bench-101 labels.
    Other libraries' spec classes (``nasbench_pytorch``'s and the official API's
    ``ModelSpec``) are third-party types this package neither depends on nor imports, so they
    are read by their two public fields, ``matrix`` and ``ops``; that attribute read is the
    only duck typing here.
    """
    if isinstance(spec, dict):
        try:
            matrix, ops = spec["matrix"], spec["ops"]
        except KeyError:
            raise ValueError(f"a spec needs 'matrix' and 'ops', got keys {sorted(spec)}") from None
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        matrix, ops = spec
    elif isinstance(spec, ModelSpec):
        matrix, ops = spec.matrix, spec.ops
    else:
        try:  # a third-party spec object (see the docstring)
            matrix, ops = spec.matrix, spec.ops
        except AttributeError:
            raise ValueError(f"cannot read a NAS-Bench-101 spec from {spec!r}") from None
    if isinstance(ops, str):
        ops = ops.split(",")
    return matrix, [_ALIASES.get(str(o), str(o)) for o in ops]


def spec_hash(spec: Any) -> str:
    """The NAS-Bench-101 module hash of a spec (pruned first, as the table is keyed).

    ``spec``: any form :func:`spec_from_any` reads; a :class:`~.graph.ModelSpec` hashes its
    pruned form directly.
    """
    if isinstance(spec, ModelSpec):
        return spec.hash()
    matrix, ops = spec_from_any(spec)
    return ModelSpec(matrix, ops).hash()


def _fallback_hash(matrix: Any, ops: Sequence[str]) -> str:
    """The same hash computed by ``nasbench_pytorch``'s ``graph_util.hash_module`` after the
    same pruning rule: an independent cross-check of :meth:`ModelSpec.hash` (the tests)."""
    from nasbench_pytorch.model import graph_util

    m = np.asarray(matrix).astype(np.int64)
    v = len(ops)
    fwd = {0}
    for u in range(v):
        if u in fwd:
            fwd.update(w for w in range(u + 1, v) if m[u, w])
    bwd = {v - 1}
    for w in range(v - 1, -1, -1):
        if w in bwd:
            bwd.update(u for u in range(w) if m[u, w])
    keep = sorted(fwd & bwd)
    if len(keep) < 2 or keep[0] != 0 or keep[-1] != v - 1:
        raise ValueError("the input does not reach the output: the spec has no hash")
    m = m[np.ix_(keep, keep)]
    labels = ["conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"]
    lab = [-1] + [labels.index(ops[i]) for i in keep[1:-1]] + [-2]
    return graph_util.hash_module(m, lab)
