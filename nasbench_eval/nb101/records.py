"""NAS-Bench-101 records: the JSON list and its base64 protobuf metrics, decoded and encoded
by hand (no TensorFlow, no protobuf runtime).

One TFRecord record per (model, epoch budget, repeat) holds the UTF-8 JSON list::

    [module_hash, epochs, adjacency, ops, metrics]

``module_hash``: 32 hex digits (MD5, the pruned spec's module hash); ``epochs``: the budget
(4, 12, 36 or 108); ``adjacency``: row-major '0'/'1' text of the pruned V x V matrix;
``ops``: comma-separated labels including 'input' and 'output'; ``metrics``: base64 of a
serialized proto2 message::

    message ModelMetrics {
      repeated EvaluationData evaluation_data = 1;   // tag 0x0A
      optional int32 trainable_parameters = 2;       // tag 0x10
      optional double total_time = 3;                // tag 0x19
    }
    message EvaluationData {
      optional double current_epoch = 1;        // 0x09
      optional double training_time = 2;        // 0x11
      optional double train_accuracy = 3;       // 0x19
      optional double validation_accuracy = 4;  // 0x21
      optional double test_accuracy = 5;        // 0x29
      optional string checkpoint_path = 6;      // 0x32
    }

``evaluation_data`` holds three points: [0] before training, [1] halfway, [2] the end of the
budget; the official API reports [2] as the final numbers and [1] as the halfway ones.

The decoder follows protobuf's wire rules: fields may come in any order, a repeated
non-repeated field keeps the last value, unknown fields are skipped by wire type (as is a
known field number with an unexpected wire type), int32 values arrive as (possibly 10-byte,
sign-extended) varints. The encoder writes set fields in field-number order, as protobuf
does, so the writer produces the bytes the real file has for the same values.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field

import numpy as np

from ..errors import NasbenchEvalError

__all__ = ["RecordFormatError", "EvaluationData", "ModelMetrics", "NB101Record",
           "decode_metrics", "encode_metrics", "decode_record", "encode_record",
           "parse_record_fields", "encode_varint", "decode_varint", "metrics_fast",
           "metrics_fast_many", "RECORD_FAST_RE"]


class RecordFormatError(NasbenchEvalError):
    """A record's JSON or protobuf payload is malformed."""


# --------------------------------------------------------------------------- messages

@dataclass
class EvaluationData:
    """One evaluation point of a training run; ``None`` = field not present."""

    current_epoch: float | None = None
    training_time: float | None = None
    train_accuracy: float | None = None
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    checkpoint_path: str | None = None


@dataclass
class ModelMetrics:
    evaluation_data: list[EvaluationData] = field(default_factory=list)
    trainable_parameters: int | None = None
    total_time: float | None = None


@dataclass
class NB101Record:
    """One decoded record: a model (pruned spec + hash) trained once at one budget."""

    module_hash: str
    epochs: int
    adjacency: str  # row-major '0'/'1' text, V*V characters
    ops: list[str]
    metrics: ModelMetrics

    @property
    def num_vertices(self) -> int:
        return _side(self.adjacency)

    @property
    def matrix(self) -> list[list[int]]:
        v = self.num_vertices
        return [[int(self.adjacency[i * v + j]) for j in range(v)] for i in range(v)]


# --------------------------------------------------------------------------- wire format

_D = struct.Struct("<d")
_EVAL5 = struct.Struct("<xdxdxdxdxd")  # fields 1..5, each a 1-byte tag + a double
_EVAL5_TAGS = (0x09, 0x11, 0x19, 0x21, 0x29)

WT_VARINT, WT_I64, WT_LEN, WT_SGROUP, WT_EGROUP, WT_I32 = 0, 1, 2, 3, 4, 5


def encode_varint(value: int) -> bytes:
    """Base-128 varint; negative values as their 64-bit two's complement (10 bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after it); raises :class:`RecordFormatError` on a bad varint."""
    result = 0
    shift = 0
    n = len(buf)
    while True:
        if pos >= n:
            raise RecordFormatError(f"protobuf: varint runs past the end ({n} bytes)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise RecordFormatError(f"protobuf: varint longer than 10 bytes at byte {pos - 10}")


def _skip(buf: bytes, pos: int, wire: int, fnum: int) -> int:
    if wire == WT_VARINT:
        return decode_varint(buf, pos)[1]
    if wire == WT_I64:
        end = pos + 8
    elif wire == WT_I32:
        end = pos + 4
    elif wire == WT_LEN:
        n, pos = decode_varint(buf, pos)
        end = pos + n
    elif wire == WT_SGROUP:  # a deprecated group: skip to its matching end tag
        while True:
            if pos >= len(buf):
                raise RecordFormatError(f"protobuf: group {fnum} is not closed")
            key, pos = decode_varint(buf, pos)
            if key & 7 == WT_EGROUP:
                if key >> 3 != fnum:
                    raise RecordFormatError(f"protobuf: group {fnum} closed by {key >> 3}")
                return pos
            pos = _skip(buf, pos, key & 7, key >> 3)
    else:
        raise RecordFormatError(f"protobuf: invalid wire type {wire} for field {fnum}")
    if end > len(buf):
        raise RecordFormatError(f"protobuf: field {fnum} runs past the end ({len(buf)} bytes)")
    return end


def _double(buf: bytes, pos: int, fnum: int) -> float:
    if pos + 8 > len(buf):
        raise RecordFormatError(f"protobuf: double field {fnum} runs past the end")
    return _D.unpack_from(buf, pos)[0]


def _int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


_EVAL_NAMES = {1: "current_epoch", 2: "training_time", 3: "train_accuracy",
               4: "validation_accuracy", 5: "test_accuracy"}


def _decode_eval(buf: bytes) -> EvaluationData:
    e = EvaluationData()
    pos = 0
    n = len(buf)
    if n >= 45 and (buf[0], buf[9], buf[18], buf[27], buf[36]) == _EVAL5_TAGS:
        # The layout every NAS-Bench-101 record has; identical to the generic loop below.
        (e.current_epoch, e.training_time, e.train_accuracy, e.validation_accuracy,
         e.test_accuracy) = _EVAL5.unpack_from(buf)
        pos = 45
    while pos < n:
        key, pos = decode_varint(buf, pos)
        fnum, wire = key >> 3, key & 7
        if 1 <= fnum <= 5 and wire == WT_I64:
            setattr(e, _EVAL_NAMES[fnum], _double(buf, pos, fnum))
            pos += 8
        elif fnum == 6 and wire == WT_LEN:
            ln, pos = decode_varint(buf, pos)
            if pos + ln > n:
                raise RecordFormatError("protobuf: checkpoint_path runs past the end")
            try:
                e.checkpoint_path = buf[pos:pos + ln].decode("utf-8")
            except UnicodeDecodeError:
                raise RecordFormatError("protobuf: checkpoint_path is not UTF-8") from None
            pos += ln
        else:
            pos = _skip(buf, pos, wire, fnum)
    return e


def decode_metrics(buf: bytes) -> ModelMetrics:
    """Decode a serialized ``ModelMetrics``."""
    m = ModelMetrics()
    pos = 0
    n = len(buf)
    while pos < n:
        key, pos = decode_varint(buf, pos)
        fnum, wire = key >> 3, key & 7
        if fnum == 1 and wire == WT_LEN:
            ln, pos = decode_varint(buf, pos)
            if pos + ln > n:
                raise RecordFormatError(f"protobuf: evaluation_data #{len(m.evaluation_data)} "
                                        f"declares {ln} bytes, {n - pos} remain")
            m.evaluation_data.append(_decode_eval(buf[pos:pos + ln]))
            pos += ln
        elif fnum == 2 and wire == WT_VARINT:
            v, pos = decode_varint(buf, pos)
            m.trainable_parameters = _int32(v)
        elif fnum == 3 and wire == WT_I64:
            m.total_time = _double(buf, pos, 3)
            pos += 8
        else:
            pos = _skip(buf, pos, wire, fnum)
    return m


def _encode_eval(e: EvaluationData) -> bytes:
    out = bytearray()
    for fnum, name in _EVAL_NAMES.items():
        v = getattr(e, name)
        if v is not None:
            out.append((fnum << 3) | WT_I64)
            out += _D.pack(float(v))
    if e.checkpoint_path is not None:
        raw = e.checkpoint_path.encode("utf-8")
        out.append((6 << 3) | WT_LEN)
        out += encode_varint(len(raw)) + raw
    return bytes(out)


def encode_metrics(m: ModelMetrics) -> bytes:
    """Serialize a ``ModelMetrics`` (set fields in field-number order, as protobuf does)."""
    out = bytearray()
    for e in m.evaluation_data:
        sub = _encode_eval(e)
        out.append((1 << 3) | WT_LEN)
        out += encode_varint(len(sub)) + sub
    if m.trainable_parameters is not None:
        v = int(m.trainable_parameters)
        if not -(1 << 31) <= v < (1 << 31):
            raise ValueError(f"trainable_parameters {v} does not fit an int32")
        out.append((2 << 3) | WT_VARINT)
        out += encode_varint(v)
    if m.total_time is not None:
        out.append((3 << 3) | WT_I64)
        out += _D.pack(float(m.total_time))
    return bytes(out)


# --------------------------------------------------------------------------- JSON record

def _side(adjacency: str) -> int:
    v = int(round(len(adjacency) ** 0.5))
    if v * v != len(adjacency):
        raise RecordFormatError(f"adjacency text has {len(adjacency)} characters, not a square")
    return v


# The exact text json.dumps gives for a record whose strings need no escapes. Whatever it
# matches, json.loads reads the same way; anything else takes the general path.
_RECORD_RE = re.compile(rb'\["([0-9a-f]{32})", (0|[1-9][0-9]{0,8}), "([01]*)", "([^"\\\x00-\x1f\x7f-\xff]*)", '
                        rb'"([A-Za-z0-9+/]*={0,2})"\]')
_b64decode = binascii.a2b_base64
RECORD_FAST_RE = _RECORD_RE
"""Groups: hash, epochs, adjacency, ops, base64 metrics (bytes); a match whose base64 length
is a multiple of 4 reads exactly as ``json.loads`` + ``base64.b64decode`` would."""


def parse_record_fields(data: bytes) -> tuple[str, int, str, str, bytes]:
    """(module_hash, epochs, adjacency text, ops text, serialized metrics) of one record,
    type-checked; the metrics are base64-decoded but not parsed."""
    m = _RECORD_RE.fullmatch(data)
    if m is not None and len(m.group(5)) % 4 == 0:
        h, e, a, o, b = m.groups()
        return h.decode(), int(e), a.decode(), o.decode(), _b64decode(b)
    try:
        row = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordFormatError(f"record is not UTF-8 JSON: {exc}") from None
    if not isinstance(row, list) or len(row) != 5:
        raise RecordFormatError(
            f"record must be a JSON list [hash, epochs, adjacency, ops, metrics], got "
            f"{type(row).__name__} of length {len(row) if isinstance(row, list) else '-'}")
    h, epochs, adjacency, ops, metrics = row
    if not (isinstance(h, str) and len(h) == 32):
        raise RecordFormatError(f"module hash must be 32 hex digits, got {h!r}")
    if not isinstance(epochs, int) or isinstance(epochs, bool):
        raise RecordFormatError(f"epochs must be an integer, got {epochs!r}")
    if not isinstance(adjacency, str) or not isinstance(ops, str):
        raise RecordFormatError("adjacency and ops must be strings")
    if not isinstance(metrics, str):
        raise RecordFormatError("metrics must be a base64 string")
    try:
        raw = base64.b64decode(metrics, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordFormatError(f"metrics are not valid base64: {exc}") from None
    return h, epochs, adjacency, ops, raw


def decode_record(data: bytes) -> NB101Record:
    """Decode one record's bytes (the JSON list) into an :class:`NB101Record`."""
    h, epochs, adjacency, ops, raw = parse_record_fields(data)
    if set(adjacency) - {"0", "1"}:
        raise RecordFormatError(f"adjacency text must be '0'/'1' characters, got {adjacency!r}")
    op_list = ops.split(",")
    if len(op_list) != _side(adjacency):
        raise RecordFormatError(f"{len(op_list)} op labels for a {_side(adjacency)}-vertex matrix")
    return NB101Record(h, epochs, adjacency, op_list, decode_metrics(raw))


def encode_record(module_hash: str, epochs: int, adjacency: str, ops: list[str] | str,
                  metrics: ModelMetrics | bytes) -> bytes:
    """One record's bytes: the JSON list with base64 protobuf metrics."""
    raw = metrics if isinstance(metrics, (bytes, bytearray)) else encode_metrics(metrics)
    ops_text = ops if isinstance(ops, str) else ",".join(ops)
    return json.dumps([module_hash, int(epochs), adjacency, ops_text,
                       base64.b64encode(raw).decode("ascii")]).encode("utf-8")


# --------------------------------------------------------------------------- fast path
# Every NAS-Bench-101 record seen so far serializes ModelMetrics as: three evaluation_data
# of exactly the five doubles (tags 0x09..0x29, 45 bytes each), trainable_parameters,
# total_time, nothing else. For that exact byte layout the values can be read with one
# struct call; the generic decoder gives the same values (tested), and any other layout
# (checkpoint paths, missing or extra fields, other order) goes through it.
_CANON_RE = re.compile(rb"(?:\x0a\x2d\x09.{8}\x11.{8}\x19.{8}\x21.{8}\x29.{8}){3}"
                       rb"\x10([\x80-\xff]{0,4}[\x00-\x7f])\x19(.{8})", re.DOTALL)
_CANON = struct.Struct("<" + "3xdxdxdxdxd" * 3)


def metrics_fast(raw: bytes) -> tuple[int, float, tuple[float, ...]] | None:
    """(trainable_parameters, total_time, the 15 doubles of evaluation_data[0..2] in field
    order) when ``raw`` has the canonical NAS-Bench-101 layout, else None."""
    m = _CANON_RE.fullmatch(raw)
    if m is None:
        return None
    p = 0
    for k, b in enumerate(m.group(1)):
        p |= (b & 0x7F) << (7 * k)
    return _int32(p), _D.unpack(m.group(2))[0], _CANON.unpack_from(raw)


def _canon_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tag_pos, tag_val, dbl = [], [], []
    for k in range(3):
        base = 47 * k
        tag_pos += [base, base + 1]
        tag_val += [0x0A, 0x2D]
        for j, tag in enumerate(_EVAL5_TAGS):
            tag_pos.append(base + 2 + 9 * j)
            tag_val.append(tag)
            dbl += range(base + 3 + 9 * j, base + 11 + 9 * j)
    return np.array(tag_pos), np.array(tag_val, dtype=np.uint8), np.array(dbl)


_TAG_POS, _TAG_VAL, _DBL_COLS = _canon_columns()


def metrics_fast_many(raws: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`metrics_fast` for many serialized messages at once, with numpy.

    Returns ``(ok, trainable_parameters, total_time, doubles)`` with shapes n, n, n, n x 15;
    rows where ``ok`` is false do not have the canonical layout and hold garbage (decode
    those with :func:`decode_metrics`). Messages are grouped by length (the layout fixes
    every offset but the parameter count's varint length).
    """
    n = len(raws)
    ok = np.zeros(n, dtype=bool)
    params = np.zeros(n, dtype=np.int64)
    total = np.zeros(n, dtype=np.float64)
    dbl = np.zeros((n, 15), dtype=np.float64)
    if n == 0:
        return ok, params, total, dbl
    lens = np.fromiter(map(len, raws), dtype=np.int64, count=n)
    for size in np.unique(lens).tolist():
        v = size - 151  # 3 x 47 bytes of evaluation_data, tag 0x10, varint, tag 0x19, double
        if not 1 <= v <= 5:
            continue
        idx = np.flatnonzero(lens == size)
        mat = np.frombuffer(b"".join([raws[i] for i in idx.tolist()]),
                            dtype=np.uint8).reshape(len(idx), size)
        vb = mat[:, 142:142 + v]
        good = ((mat[:, _TAG_POS] == _TAG_VAL).all(axis=1) & (mat[:, 141] == 0x10)
                & (mat[:, size - 9] == 0x19) & (vb[:, :-1] >= 0x80).all(axis=1)
                & (vb[:, -1] < 0x80))
        p = np.zeros(len(idx), dtype=np.int64)
        for k in range(v):
            p |= (vb[:, k].astype(np.int64) & 0x7F) << (7 * k)
        p &= 0xFFFFFFFF
        p[p >= 1 << 31] -= 1 << 32
        ok[idx] = good
        params[idx] = p
        total[idx] = np.ascontiguousarray(mat[:, size - 8:]).view("<f8")[:, 0]
        dbl[idx] = np.ascontiguousarray(mat[:, _DBL_COLS]).view("<f8")
    return ok, params, total, dbl
