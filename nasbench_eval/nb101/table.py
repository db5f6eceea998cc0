"""The NAS-Bench-101 table without TensorFlow: import a TFRecord file once into a compact
``.npz`` cache, then load it in a fraction of a second and query it by hash or by spec.

Import (:func:`import_nasbench101`) streams the file block by block (CRCs checked with numpy,
see :mod:`.tfrecord`), decodes every record (:mod:`.records`) and keeps, per record, the
numbers the official API reports: the end of the budget (``evaluation_data[2]``: train /
validation / test accuracy, training time), the halfway point (``evaluation_data[1]``, the
same four), the run's ``total_time``; per model the parameter count and the pruned spec as
the file stores it. Both layouts are handled: ``nasbench_only108.tfrecord`` (3 repeats at
108 epochs) and ``nasbench_full.tfrecord`` (budgets 4/12/36/108, 3 repeats each); the budgets
and the number of repeats are read from the data, not assumed. A repeat's index is its order
of appearance in the file, as in the official API.

Cache layout (one ``.npz``, arrays, no pickles): ``hashes`` (M, 'S32', sorted), ``budgets``
(B,), ``repeats`` (M x B, how many runs each model has at each budget), one M x B x R array
per metric (float32 where every value of that metric survives float64 -> float32 -> float64
exactly, else float64, so cached values are bit-identical to the file's doubles; NaN where a
run or a field is missing), ``trainable_parameters`` (M,), the spec as the file's own text
interned (``adjacency_id`` / ``adjacency_text``, ``ops_id`` / ``ops_text``), ``meta`` (JSON).

Queries (:meth:`NB101Table.query`): mean over repeats at 108 epochs by default; any budget
present in the file, or a single repeat, on request. Errors are 1 - accuracy; the mean test
error is ``1 - mean(test accuracies)`` in float64.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NasbenchEvalError
from .cache import (_NAN, CACHE_NAME, DEFAULT_BUDGET, FORMAT_VERSION, IMPORT_COMMAND, METRICS,
                    CacheMissingError, UnknownHashError, default_cache_path, resolve_cache_path)
from .hashing import _fallback_hash, spec_from_any, spec_hash  # noqa: F401  (tests)
from .importer import ImportReport, import_nasbench101
from .synthetic import random_specs, synthetic_metrics, synthetic_nasbench101, write_nasbench101

# The cache constants and errors (:mod:`.cache`), spec hashing (:mod:`.hashing`), the importer
# (:mod:`.importer`) and the synthetic-file writers (:mod:`.synthetic`) live in their own
# modules; every public name stays importable from here.
__all__ = ["CACHE_NAME", "DEFAULT_BUDGET", "FORMAT_VERSION", "IMPORT_COMMAND", "METRICS",
           "CacheMissingError", "ImportReport", "NB101Table", "UnknownHashError",
           "default_cache_path", "import_nasbench101", "load_table", "random_specs",
           "resolve_cache_path", "spec_from_any", "spec_hash", "synthetic_metrics",
           "synthetic_nasbench101", "write_nasbench101"]


class NB101Table:
    """The imported NAS-Bench-101 table (see the module docstring for the layout)."""

    def __init__(self, arrays: dict[str, np.ndarray], path: Path | None = None):
        self.path = path
        self.meta: dict[str, Any] = json.loads(str(arrays["meta"]))
        self.hashes: np.ndarray = arrays["hashes"]
        self.budgets: list[int] = [int(b) for b in arrays["budgets"]]
        self.repeats: np.ndarray = arrays["repeats"]
        self.metrics: dict[str, np.ndarray] = {m: arrays[m] for m in METRICS}
        self.trainable_parameters: np.ndarray = arrays["trainable_parameters"]
        self._adj_id, self._adj_text = arrays["adjacency_id"], arrays["adjacency_text"]
        self._ops_id, self._ops_text = arrays["ops_id"], arrays["ops_text"]

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, cache: str | os.PathLike | None = None,
             data_root: str | os.PathLike | None = None) -> NB101Table:
        path = resolve_cache_path(cache, data_root)
        if not path.is_file():
            raise CacheMissingError(
                f"NAS-Bench-101 table cache not found at {path}. Build it once from the "
                f"TFRecord file with `{IMPORT_COMMAND}`"
                + ("" if path == default_cache_path() else f" --cache {path}")
                + " (the cache location follows $NASBENCH_EVAL_DATA).")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError) as exc:
            raise CacheMissingError(f"{path}: unreadable NAS-Bench-101 cache ({exc}); rebuild "
                                    f"it with `{IMPORT_COMMAND}`") from None
        missing = {"meta", "hashes", "budgets", "repeats", *METRICS} - set(arrays)
        version = json.loads(str(arrays["meta"])).get("format_version") if "meta" in arrays else None
        if missing or version != FORMAT_VERSION:
            raise CacheMissingError(f"{path}: not a NAS-Bench-101 cache of format "
                                    f"{FORMAT_VERSION}; rebuild it with `{IMPORT_COMMAND}`")
        return cls(arrays, path)

    # ------------------------------------------------------------------ lookup
    def __len__(self) -> int:
        return len(self.hashes)

    def __contains__(self, h: object) -> bool:
        try:
            self.index(str(h))
        except UnknownHashError:
            return False
        return True

    def index(self, h: str) -> int:
        """Row of module hash ``h``; :class:`UnknownHashError` when absent."""
        key = h.strip().lower().encode("ascii", "replace")
        i = int(np.searchsorted(self.hashes, key))
        if i < len(self.hashes) and self.hashes[i] == key:
            return i
        raise UnknownHashError(
            f"module hash {h!r} is not in the NAS-Bench-101 table"
            + (f" ({self.path})" if self.path else "")
            + (": a hash is 32 hex digits" if len(h.strip()) != 32 else
               " (NAS-Bench-101 holds every valid cell of at most 7 vertices and 9 edges: "
               "check that the spec is valid and was pruned and hashed as NAS-Bench-101 does)"))

    def indices(self, hashes: Iterable[str]) -> np.ndarray:
        """Rows of many hashes at once (vectorised); -1 where a hash is absent."""
        keys = np.array([h.lower() for h in hashes], dtype="S32")
        i = np.searchsorted(self.hashes, keys)
        i_clip = np.minimum(i, len(self.hashes) - 1)
        return np.where(self.hashes[i_clip] == keys, i_clip, -1)

    def budget_index(self, budget: int) -> int:
        try:
            return self.budgets.index(int(budget))
        except ValueError:
            raise NasbenchEvalError(
                f"budget {budget} epochs is not in this table; it has "
                f"{', '.join(map(str, self.budgets))}"
                + (" (import nasbench_full.tfrecord for 4/12/36)" if self.budgets == [108]
                   else "")) from None

    def spec(self, h: str) -> dict[str, Any]:
        """The pruned spec the file stores for ``h``: ``{"matrix": ..., "ops": [...]}``."""
        i = self.index(h)
        text = str(self._adj_text[self._adj_id[i]])
        v = math.isqrt(len(text))
        return {"matrix": [[int(text[r * v + c]) for c in range(v)] for r in range(v)],
                "ops": str(self._ops_text[self._ops_id[i]]).split(",")}

    # ------------------------------------------------------------------ queries
    def query(self, h: str, budget: int = DEFAULT_BUDGET, repeat: int | None = None
              ) -> dict[str, Any]:
        """The table's numbers for module hash ``h`` at ``budget`` epochs.

        Default: means over the repeats (``test_error`` = 1 - mean test accuracy); with
        ``repeat=r``, run ``r`` alone. Per-repeat values are always included under
        ``per_repeat``.
        """
        i = self.index(h)
        b = self.budget_index(budget)
        n = int(self.repeats[i, b])
        if n == 0:
            raise UnknownHashError(f"module hash {h} has no run at {budget} epochs in this table "
                                   f"(budgets with runs: "
                                   f"{[x for x, c in zip(self.budgets, self.repeats[i]) if c]})")
        if repeat is not None and not 0 <= repeat < n:
            raise NasbenchEvalError(f"repeat {repeat} does not exist: {h} has {n} repeats at "
                                    f"{budget} epochs (0..{n - 1})")
        per = {m: [float(x) for x in self.metrics[m][i, b, :n]] for m in METRICS}
        sel = slice(None) if repeat is None else slice(repeat, repeat + 1)
        avg = {m: _mean(v[sel]) for m, v in per.items()}
        out: dict[str, Any] = {
            "hash": str(self.hashes[i].decode()), "budget": int(budget), "repeat": repeat,
            "repeats": n,
            "test_error": 1.0 - avg["test_accuracy"],
            "val_error": 1.0 - avg["validation_accuracy"],
            "train_error": 1.0 - avg["train_accuracy"],
            **avg,
            "trainable_parameters": int(self.trainable_parameters[i]),
            "per_repeat": per,
        }
        return out

    def test_error(self, h: str, budget: int = DEFAULT_BUDGET, repeat: int | None = None
                   ) -> float:
        """``query(h, budget, repeat)["test_error"]`` without building the full result."""
        i = self.index(h)
        b = self.budget_index(budget)
        n = int(self.repeats[i, b])
        if n == 0 or (repeat is not None and not 0 <= repeat < n):
            return self.query(h, budget, repeat)["test_error"]  # raises the clear error
        acc = self.metrics["test_accuracy"][i, b]
        return 1.0 - _mean(acc[:n].tolist() if repeat is None else [float(acc[repeat])])

    def query_spec(self, spec: Any, budget: int = DEFAULT_BUDGET, repeat: int | None = None
                   ) -> dict[str, Any]:
        """:meth:`query` for a spec (ModelSpec, ``{"matrix", "ops"}`` or ``(matrix, ops)``)."""
        return self.query(spec_hash(spec), budget, repeat)

    def mean_test_error(self, rows: np.ndarray, budget: int = DEFAULT_BUDGET) -> np.ndarray:
        """Vectorised: 1 - mean test accuracy over the repeats of each row (NaN-aware)."""
        b = self.budget_index(budget)
        acc = self.metrics["test_accuracy"][rows, b].astype(np.float64)
        with np.errstate(invalid="ignore"):
            return 1.0 - np.nanmean(acc, axis=-1)

    def describe(self) -> list[str]:
        m = self.meta
        return [f"NAS-Bench-101 table {self.path}: {len(self):,} models, {m.get('records', 0):,} "
                f"records, budgets {', '.join(map(str, self.budgets))}, up to "
                f"{int(self.repeats.max())} repeats; imported from {m.get('source')} "
                f"({m.get('layout')}) on {m.get('created')}"]


def _mean(xs: list[float]) -> float:
    good = [x for x in xs if x == x]
    return math.fsum(good) / len(good) if good else _NAN


_LOADED: dict[tuple[str, float], NB101Table] = {}


def load_table(cache: str | os.PathLike | None = None,
               data_root: str | os.PathLike | None = None) -> NB101Table:
    """:meth:`NB101Table.load`, memoised per (path, modification time) for the process."""
    path = resolve_cache_path(cache, data_root)
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return NB101Table.load(path)  # raises the clear "cache missing" error
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = NB101Table.load(path)
    return _LOADED[key]
