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

import binascii
import json
import math
import os
import time
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataUnavailableError, NasbenchEvalError
from .records import (RECORD_FAST_RE, ModelMetrics, RecordFormatError, decode_metrics,
                      metrics_fast_many, parse_record_fields)
from .tfrecord import iter_record_blocks

__all__ = ["CACHE_NAME", "FORMAT_VERSION", "METRICS", "CacheMissingError", "UnknownHashError",
           "NB101Table", "default_cache_path", "resolve_cache_path", "import_nasbench101",
           "load_table", "spec_hash", "spec_from_any"]

FORMAT_VERSION = 1
CACHE_NAME = "nasbench101.npz"
DEFAULT_BUDGET = 108
IMPORT_COMMAND = "nasbench-eval data import-nasbench101 PATH/TO/nasbench_only108.tfrecord"

METRICS = ("train_accuracy", "validation_accuracy", "test_accuracy", "training_time",
           "halfway_train_accuracy", "halfway_validation_accuracy", "halfway_test_accuracy",
           "halfway_training_time", "total_time")
"""Per-record numbers kept: evaluation_data[2] (final), evaluation_data[1] (halfway), total."""

_NAN = float("nan")


class CacheMissingError(DataUnavailableError):
    """The NAS-Bench-101 cache has not been built (or is unreadable / of another version)."""


class UnknownHashError(NasbenchEvalError, KeyError):
    """A module hash (or spec) is not in the table."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------- paths

def default_cache_path() -> Path:
    """``$NASBENCH_EVAL_DATA/nasbench101/nasbench101.npz`` (else under
    ``~/.cache/nasbench-eval/data``)."""
    from ..data import default_data_root

    return default_data_root() / "nasbench101" / CACHE_NAME


def resolve_cache_path(cache: str | os.PathLike | None = None,
                       data_root: str | os.PathLike | None = None) -> Path:
    """``cache`` (a file, or a directory that holds ``nasbench101.npz``), else
    ``data_root/nasbench101/nasbench101.npz``, else :func:`default_cache_path`."""
    if cache is not None:
        p = Path(cache).expanduser()
        return p / CACHE_NAME if p.is_dir() or str(cache).endswith(os.sep) else p
    if data_root is not None:
        return Path(data_root).expanduser() / "nasbench101" / CACHE_NAME
    return default_cache_path()


# --------------------------------------------------------------------------- spec -> hash

_ALIASES = {"conv3x3": "conv3x3-bn-relu", "conv1x1": "conv1x1-bn-relu",
            "maxpool": "maxpool3x3", "max_pool_3x3": "maxpool3x3"}


def spec_from_any(spec: Any) -> tuple[Any, list[str]]:
    """(matrix, ops) of a ModelSpec-like object, a ``{"matrix", "ops"}`` dict or a pair.

    Short op names (``conv3x3``, ``conv1x1``) are accepted for the NAS-Bench-101 labels.
    """
    if isinstance(spec, dict):
        try:
            matrix, ops = spec["matrix"], spec["ops"]
        except KeyError:
            raise ValueError(f"a spec needs 'matrix' and 'ops', got keys {sorted(spec)}") from None
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        matrix, ops = spec
    elif hasattr(spec, "matrix") and hasattr(spec, "ops"):
        matrix, ops = spec.matrix, spec.ops
    else:
        raise ValueError(f"cannot read a NAS-Bench-101 spec from {spec!r}")
    if isinstance(ops, str):
        ops = ops.split(",")
    return matrix, [_ALIASES.get(str(o), str(o)) for o in ops]


def spec_hash(spec: Any) -> str:
    """The NAS-Bench-101 module hash of a spec (pruned first, as the table is keyed).

    Uses :class:`nasbench_eval.nb101.graph.ModelSpec` when it is importable, else
    ``nasbench_pytorch``'s ``graph_util.hash_module`` with the same pruning rule.
    """
    if hasattr(spec, "hash") and callable(spec.hash) and hasattr(spec, "pruned"):
        return spec.hash()  # already a ModelSpec: hashes its pruned form
    matrix, ops = spec_from_any(spec)
    try:
        from .graph import ModelSpec
    except ImportError:  # pragma: no cover - graph.py is part of the package now
        return _fallback_hash(matrix, ops)
    return ModelSpec(matrix, ops).hash()


def _fallback_hash(matrix: Any, ops: Sequence[str]) -> str:
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


# --------------------------------------------------------------------------- import

@dataclass
class ImportReport:
    cache: Path
    source: str
    records: int
    models: int
    budgets: list[int]
    repeats: int
    incomplete_records: int
    seconds: float
    bytes: int

    def lines(self) -> list[str]:
        rate = self.records / self.seconds if self.seconds else float("inf")
        out = [f"read {self.records:,} records of {self.models:,} models from {self.source} "
               f"({self.bytes / 1e6:.0f} MB) in {self.seconds:.1f} s ({rate:,.0f} records/s)",
               f"budgets: {', '.join(map(str, self.budgets))} epochs; up to {self.repeats} "
               f"repeats per budget",
               f"cache: {self.cache} ({self.cache.stat().st_size / 1e6:.0f} MB)"]
        if self.incomplete_records:
            out.append(f"warning: {self.incomplete_records:,} records lack an evaluation point "
                       f"or field; their missing numbers are NaN")
        return out


def import_nasbench101(path: str | os.PathLike, cache: str | os.PathLike | None = None,
                       progress: bool = True, block_size: int = 8 << 20) -> ImportReport:
    """Read a NAS-Bench-101 TFRecord file and write the cache; returns what was read.

    The file is streamed block by block; every CRC is checked. Per record, Python only
    matches the JSON text (one regex; anything unusual goes through ``json.loads``) and
    base64-decodes the metrics; the protobufs of a block are decoded together with numpy
    when they have the canonical layout (:func:`.records.metrics_fast_many`, the generic
    decoder otherwise). Memory: ~130 bytes a record. The cache is written to a temporary
    file and renamed, so a failed import never leaves a half-written cache behind.
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise DataUnavailableError(f"{src}: no such file (the NAS-Bench-101 TFRecord file, e.g. "
                                   f"nasbench_only108.tfrecord)")
    out = resolve_cache_path(cache)
    t0 = time.perf_counter()
    size = src.stat().st_size
    acc = _Accumulator(str(src))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=size, unit="B", unit_scale=True, desc=f"importing {src.name}",
                   dynamic_ncols=True)
    try:
        for block in iter_record_blocks(src, block_size=block_size):
            acc.add_block(block)
            if bar is not None:
                bar.update(block.bytes_done - bar.n)
    finally:
        if bar is not None:
            bar.close()
    arrays = acc.assemble()
    seconds = time.perf_counter() - t0
    budgets = [int(b) for b in arrays["budgets"]]
    n_models = len(arrays["hashes"])
    meta = {"format_version": FORMAT_VERSION, "source": str(src.resolve()), "source_bytes": size,
            "records": acc.n_records, "models": n_models, "budgets": budgets,
            "repeats": int(arrays["repeats"].max()), "incomplete_records": acc.incomplete,
            "import_seconds": round(seconds, 2),
            "layout": ("only108" if budgets == [108] else
                       "full" if budgets == [4, 12, 36, 108] else "other"),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    arrays["meta"] = np.array(json.dumps(meta))
    _save(out, arrays)
    return ImportReport(out, str(src), acc.n_records, n_models, budgets, meta["repeats"],
                        acc.incomplete, time.perf_counter() - t0, size)


def _row_from(m: ModelMetrics) -> tuple[tuple[float, ...], bool]:
    """The kept numbers of one decoded message (NaN where absent) and whether all were there."""
    ev = m.evaluation_data
    cols = []
    for k in (2, 1):
        e = ev[k] if len(ev) > k else None
        cols += ([e.train_accuracy, e.validation_accuracy, e.test_accuracy, e.training_time]
                 if e is not None else [None] * 4)
    cols.append(m.total_time)
    complete = None not in cols
    return tuple(_NAN if x is None else x for x in cols), complete


class _Accumulator:
    """Per-record columns of an import, block by block; :meth:`assemble` makes the cache."""

    def __init__(self, source: str):
        self.source = source
        self.hashes: list[np.ndarray] = []  # per block, 'S32'
        self.epochs = array("i")
        self.adj_id = array("i")
        self.ops_id = array("i")
        self.values: list[np.ndarray] = []  # per block, n x len(METRICS)
        self.params: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        self.adj_vocab: dict[bytes, int] = {}
        self.ops_vocab: dict[bytes, int] = {}
        self.n_records = 0
        self.incomplete = 0

    def _where(self, block: Any, i: int) -> str:
        return f"{self.source}: record #{block.first_index + i} at byte offset {int(block.offsets[i])}"

    def add_block(self, block: Any) -> None:
        buf = block.buf
        match = RECORD_FAST_RE.fullmatch
        a2b = binascii.a2b_base64
        adj_vocab, ops_vocab = self.adj_vocab, self.ops_vocab
        hashes: list[bytes] = []
        epochs, adj_id, ops_id = self.epochs, self.adj_id, self.ops_id
        raws: list[bytes] = []
        for i, (s, n) in enumerate(zip(block.starts.tolist(), block.lengths.tolist())):
            m = match(buf, s, s + n)
            if m is not None and not len(m.group(5)) & 3:
                h, e, a, o, b = m.groups()
                e = int(e)
                raw = a2b(b)
            else:  # unusual JSON text: the general parser (with type checks)
                try:
                    hs, e, at, ot, raw = parse_record_fields(buf[s:s + n])
                    h = hs.lower().encode("ascii")
                    if len(h) != 32 or h.strip(b"0123456789abcdef"):
                        raise RecordFormatError(f"module hash must be 32 hex digits, got {hs!r}")
                except (RecordFormatError, UnicodeEncodeError) as exc:
                    if isinstance(exc, UnicodeEncodeError):
                        exc = RecordFormatError("module hash must be 32 hex digits")
                    raise RecordFormatError(f"{self._where(block, i)}: {exc}") from None
                a, o = at.encode("utf-8"), ot.encode("utf-8")
            hashes.append(h)
            epochs.append(e)
            ai = adj_vocab.get(a)
            if ai is None:
                ai = adj_vocab[a] = len(adj_vocab)
            oi = ops_vocab.get(o)
            if oi is None:
                oi = ops_vocab[o] = len(ops_vocab)
            adj_id.append(ai)
            ops_id.append(oi)
            raws.append(raw)
        ok, params, total, d = metrics_fast_many(raws)
        # evaluation_data[k] field f (1..5) is d[:, 5k + f - 1]; kept: [2] then [1], total
        values = np.column_stack([d[:, 12], d[:, 13], d[:, 14], d[:, 11],
                                  d[:, 7], d[:, 8], d[:, 9], d[:, 6], total])
        for i in np.flatnonzero(~ok).tolist():
            try:
                mm = decode_metrics(raws[i])
            except RecordFormatError as exc:
                raise RecordFormatError(f"{self._where(block, i)}: {exc}") from None
            values[i], complete = _row_from(mm)
            params[i] = -1 if mm.trainable_parameters is None else mm.trainable_parameters
            self.incomplete += not complete
        self.hashes.append(np.array(hashes, dtype="S32"))
        self.values.append(values)
        self.params.append(params)
        self.offsets.append(block.offsets)
        self.n_records += len(raws)

    def assemble(self) -> dict[str, np.ndarray]:
        """Per-record columns -> model-major arrays sorted by hash.

        A model's repeat r at a budget is its r-th record at that budget in file order; its
        spec and parameter count come from its first record.
        """
        if not self.n_records:
            raise RecordFormatError(f"{self.source}: the file holds no records")
        h = np.concatenate(self.hashes)
        uniq, first, model = np.unique(h, return_index=True, return_inverse=True)
        model = model.reshape(-1)
        epochs = np.frombuffer(self.epochs, dtype=np.int32)
        budgets, bidx = np.unique(epochs, return_inverse=True)
        bidx = bidx.reshape(-1)
        n_models, n_budgets = len(uniq), len(budgets)
        key = model.astype(np.int64) * n_budgets + bidx
        order = np.argsort(key, kind="stable")  # file order within each (model, budget)
        sk = key[order]
        group_start = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
        sizes = np.diff(np.r_[group_start, len(sk)])
        rep = np.empty(len(key), dtype=np.int64)
        rep[order] = np.arange(len(sk)) - np.repeat(group_start, sizes)
        n_rep = int(rep.max()) + 1
        adj_id = np.frombuffer(self.adj_id, dtype=np.int32)
        ops_id = np.frombuffer(self.ops_id, dtype=np.int32)
        bad = np.flatnonzero((adj_id != adj_id[first][model]) | (ops_id != ops_id[first][model]))
        if len(bad):
            i = int(bad[0])
            off = int(np.concatenate(self.offsets)[i])
            raise RecordFormatError(
                f"{self.source}: record #{i} at byte offset {off}: hash "
                f"{uniq[model[i]].decode()} appeared before (record #{int(first[model[i]])}) "
                f"with another spec")
        vals = np.concatenate(self.values)
        out: dict[str, np.ndarray] = {"hashes": uniq, "budgets": budgets.astype(np.int32)}
        out["repeats"] = np.bincount(key, minlength=n_models * n_budgets).reshape(
            n_models, n_budgets).astype(np.int16)
        for k, name in enumerate(METRICS):
            col = np.full((n_models, n_budgets, n_rep), np.nan)
            col[model, bidx, rep] = vals[:, k]
            as32 = col.astype(np.float32)
            exact = np.array_equal(as32.astype(np.float64), col, equal_nan=True)
            out[name] = as32 if exact else col
        out["trainable_parameters"] = np.concatenate(self.params)[first]
        out["adjacency_id"] = adj_id[first].copy()
        out["ops_id"] = ops_id[first].copy()
        out["adjacency_text"] = np.array([a.decode() for a in self.adj_vocab], dtype="U")
        out["ops_text"] = np.array([o.decode() for o in self.ops_vocab], dtype="U")
        return out


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


# --------------------------------------------------------------------------- the table

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


# --------------------------------------------------------------------------- writing
# The real file cannot be downloaded everywhere; tests and the benchmark write files of the
# same format with these helpers (the encoder is :mod:`.records`, framing :mod:`.tfrecord`).

def random_specs(n: int, seed: int = 0, max_vertices: int = 7, max_edges: int = 9
                 ) -> list[tuple[str, dict[str, Any]]]:
    """``n`` distinct valid NAS-Bench-101 cells as (module hash, pruned spec dict)."""
    from .graph import LABELS, ModelSpec

    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise RuntimeError(f"found only {len(out)} distinct cells")
        v = int(rng.integers(2, max_vertices + 1))
        m = np.triu(rng.random((v, v)) < 0.45, k=1).astype(np.int64)
        ops = ["input"] + [LABELS[int(k)] for k in rng.integers(0, 3, v - 2)] + ["output"]
        spec = ModelSpec(m, ops)
        if not spec.input_reaches_output():
            continue
        p = spec.pruned()
        if p.num_edges > max_edges or p.num_vertices > max_vertices:
            continue
        out.setdefault(p.hash(), p.to_dict())
    return list(out.items())


def synthetic_metrics(rng: np.random.Generator, budget: int, params: int,
                      checkpoint: bool = False) -> ModelMetrics:
    """A plausible ModelMetrics: 3 evaluation points (0, halfway, end); accuracies are
    float32 values widened to double, as in the real file; times are full doubles."""
    from .records import EvaluationData

    acc = rng.uniform(0.05, 0.95, size=(3, 3)).astype(np.float32).astype(np.float64)
    t_end = float(rng.uniform(100.0, 5000.0)) * budget / 108.0
    ev = []
    for k, epoch in enumerate((0.0, budget / 2.0, float(budget))):
        ev.append(EvaluationData(current_epoch=epoch, training_time=t_end * k / 2.0,
                                 train_accuracy=float(acc[k, 0]),
                                 validation_accuracy=float(acc[k, 1]),
                                 test_accuracy=float(acc[k, 2]),
                                 checkpoint_path=(f"gs://nasbench/{budget}/model.ckpt-{k}"
                                                  if checkpoint else None)))
    return ModelMetrics(ev, trainable_parameters=params, total_time=t_end * 1.1)


def write_nasbench101(path: str | os.PathLike,
                      models: Iterable[tuple[str, dict[str, Any], dict[int, list[ModelMetrics]]]],
                      ) -> int:
    """Write a NAS-Bench-101-format TFRecord file: for each (hash, spec dict, {budget:
    [metrics of each repeat]}), one record per (budget, repeat), in that order. Returns the
    number of records."""
    from .records import encode_record
    from .tfrecord import TFRecordWriter

    with TFRecordWriter(path) as w:
        for h, spec, runs in models:
            adjacency = "".join(str(int(x)) for row in spec["matrix"] for x in row)
            ops = ",".join(spec["ops"])
            for budget, reps in runs.items():
                for m in reps:
                    w.write(encode_record(h, budget, adjacency, ops, m))
    return w.count


def synthetic_nasbench101(path: str | os.PathLike, n_models: int, budgets: Sequence[int] = (108,),
                          repeats: int = 3, seed: int = 0, real_specs: int = 500,
                          checkpoint: bool = False) -> tuple[int, list[tuple[str, dict]]]:
    """A synthetic table file of ``n_models`` models x ``budgets`` x ``repeats`` records.

    The first ``min(real_specs, n_models)`` models are distinct valid cells under their true
    module hashes; the others reuse those specs under made-up unique hashes (md5 of their
    index), which keeps generation fast at 423,624 models. Returns (records written, the
    (hash, spec) pairs of the real cells).
    """
    import hashlib

    rng = np.random.default_rng(seed)
    real = random_specs(min(real_specs, n_models), seed=seed)

    def models():
        for i in range(n_models):
            if i < len(real):
                h, spec = real[i]
            else:
                h = hashlib.md5(f"nb101-synthetic-{seed}-{i}".encode()).hexdigest()
                spec = real[i % len(real)][1]
            params = int(rng.integers(200_000, 50_000_000))
            yield h, spec, {b: [synthetic_metrics(rng, b, params, checkpoint)
                                for _ in range(repeats)] for b in budgets}

    return write_nasbench101(path, models()), real
