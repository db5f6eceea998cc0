"""Import a NAS-Bench-101 TFRecord file into the ``.npz`` cache (see :mod:`.table` for the
layout): stream the file block by block (:mod:`.tfrecord`), decode every record
(:mod:`.records`), assemble the arrays and write them atomically."""
from __future__ import annotations

import binascii
import json
import os
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataUnavailableError
from .cache import _NAN, FORMAT_VERSION, METRICS, resolve_cache_path
from .records import (RECORD_FAST_RE, ModelMetrics, RecordFormatError, decode_metrics,
                      metrics_fast_many, parse_record_fields)
from .tfrecord import iter_record_blocks

__all__ = ["ImportReport", "import_nasbench101"]


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
