"""TFRecord files without TensorFlow: framing, masked CRC32C, streaming reader and writer.

A TFRecord file is a plain sequence of frames::

    uint64 little-endian  length of the data
    uint32 little-endian  masked CRC32C of those 8 length bytes
    bytes                 the data (length bytes)
    uint32 little-endian  masked CRC32C of the data

CRC32C is the Castagnoli CRC (reflected polynomial 0x82F63B78, initial value and final xor
0xFFFFFFFF; check value 0xE3069283 for b"123456789"), and a stored CRC is *masked*:
``mask(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2**32)``.

Checking CRCs byte by byte in Python would cost more than everything else the importer does
(the NAS-Bench-101 file is 0.5-2 GB). So the reader cuts the file into blocks, walks the
frames of a block (cheap: one ``struct`` call per record), and checks the CRCs of all records
of the block at once with numpy: the records are left-padded with zero bytes into a matrix
and a slicing-by-4 table CRC runs over its columns. Left padding is free because a CRC
register holding 0 stays 0 on zero bytes; the initial value's contribution depends only on
the record length and is added back by linearity of the CRC (see :func:`crc32c_many`).
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import NasbenchEvalError

__all__ = ["CRC_BACKEND", "TFRecordError", "crc32c", "crc32c_many", "crc32c_many_numpy",
           "crc32c_python", "mask_crc", "unmask_crc", "masked_crc32c",
           "read_records", "iter_record_blocks", "RecordBlock", "TFRecordWriter",
           "write_records", "frame"]

POLY = 0x82F63B78
MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
HEADER = 12  # uint64 length + uint32 masked crc of it
FOOTER = 4   # uint32 masked crc of the data
_LEN = struct.Struct("<Q")
_U32S = struct.Struct("<I")


class TFRecordError(NasbenchEvalError):
    """The file is not a well-formed TFRecord file (CRC mismatch, truncation, bad length)."""


# --------------------------------------------------------------------------- CRC32C

def _make_tables() -> np.ndarray:
    """Slicing-by-4 tables: ``T[0]`` is the classic byte table, ``T[k][b]`` is the CRC
    register after ``b`` followed by ``k`` zero bytes (all starting from register 0)."""
    t = np.zeros((4, 256), dtype=np.uint32)
    for b in range(256):
        c = b
        for _ in range(8):
            c = (c >> 1) ^ POLY if c & 1 else c >> 1
        t[0, b] = c
    for k in range(1, 4):
        prev = t[k - 1]
        t[k] = (prev >> np.uint32(8)) ^ t[0][prev & np.uint32(0xFF)]
    return t


_TABLES = _make_tables()
_T0 = [int(x) for x in _TABLES[0]]  # Python ints for the scalar path


def _load_google_crc32c():
    """``google_crc32c`` when installed with its C extension (hardware CRC32C), else None:
    its pure-Python fallback would be slower than the numpy path below."""
    try:
        import google_crc32c
    except ImportError:
        return None
    return google_crc32c if google_crc32c.implementation == "c" else None


_GOOGLE = _load_google_crc32c()
CRC_BACKEND = "google-crc32c" if _GOOGLE is not None else "numpy"
"""Which implementation :func:`crc32c` and :func:`crc32c_many` use (``numpy``: this
module's tables; the two agree bit for bit, tests/test_nb101_crosslib.py)."""


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC32C of ``data`` (continuing from ``crc``, the CRC of what came before).

    ``google-crc32c`` when installed; else pure Python, one table lookup per byte (short
    inputs: headers, tests). Many records at once go through :func:`crc32c_many`.
    """
    if _GOOGLE is not None:
        return int(_GOOGLE.extend(crc, bytes(data)))
    return crc32c_python(data, crc)


def crc32c_python(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """:func:`crc32c` in pure Python (the fallback, and the reference the tests compare to)."""
    c = crc ^ _U32
    t = _T0
    for b in bytes(data):
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ _U32


def mask_crc(crc: int) -> int:
    """TFRecord's CRC masking: rotate right by 15 bits, add 0xA282EAD8 (mod 2**32)."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + MASK_DELTA) & _U32


def unmask_crc(masked: int) -> int:
    rot = (masked - MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32


def masked_crc32c(data: bytes | bytearray | memoryview) -> int:
    return mask_crc(crc32c(data))


def _mask_many(crc: np.ndarray) -> np.ndarray:
    crc = crc.astype(np.uint32, copy=False)
    rot = (crc >> np.uint32(15)) | (crc << np.uint32(17))
    return rot + np.uint32(MASK_DELTA)  # uint32 arithmetic wraps mod 2**32


class _InitTerm:
    """``Z[n]``: the CRC register after ``n`` zero bytes starting from 0xFFFFFFFF.

    By linearity, register(0xFFFFFFFF, data) = register(0, data) ^ Z[len(data)].
    """

    def __init__(self) -> None:
        self.z = np.array([_U32], dtype=np.uint32)

    def __call__(self, lengths: np.ndarray) -> np.ndarray:
        need = int(lengths.max(initial=0))
        if need >= len(self.z):
            z = [int(v) for v in self.z]
            c = z[-1]
            for _ in range(len(z), need + 1):
                c = _T0[c & 0xFF] ^ (c >> 8)
                z.append(c)
            self.z = np.array(z, dtype=np.uint32)
        return self.z[lengths]


_init_term = _InitTerm()


def crc32c_many(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC32C of ``buf[starts[i] : starts[i] + lengths[i]]`` for every i, vectorised.

    ``buf`` is a 1-D uint8 array. Records are sorted by length and taken in groups; a group
    is gathered right-aligned into an ``N x L`` matrix (``L`` = its longest record rounded up
    to 4) with zero bytes in front, which leave a zero register unchanged; the register then
    runs over the columns four bytes at a time (slicing-by-4) for all records of the group at
    once. The 0xFFFFFFFF start is added back per length. Records over 64 KiB (none in
    NAS-Bench-101) take the scalar path. With ``google-crc32c`` installed, one C call per
    record instead (about 5x faster); :func:`crc32c_many_numpy` is the fallback itself.
    """
    if _GOOGLE is None:
        return crc32c_many_numpy(buf, starts, lengths)
    raw, value = np.ascontiguousarray(buf, dtype=np.uint8).tobytes(), _GOOGLE.value
    return np.fromiter((value(raw[s:s + n]) for s, n in zip(np.asarray(starts).tolist(),
                                                            np.asarray(lengths).tolist())),
                       dtype=np.uint32, count=len(starts))


def crc32c_many_numpy(buf: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`crc32c_many` with numpy alone (the fallback without ``google-crc32c``)."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(starts)
    out = np.zeros(n, dtype=np.uint32)
    if n == 0:
        return out
    order = np.argsort(lengths, kind="stable")
    long_from = int(np.searchsorted(lengths[order], _LONG, side="right"))
    if long_from < n:
        raw = memoryview(np.ascontiguousarray(buf)).cast("B")
        for i in order[long_from:].tolist():
            out[i] = crc32c_python(raw[starts[i]:starts[i] + lengths[i]])
    padded = np.concatenate([np.zeros(_LONG + 4, dtype=np.uint8), buf])
    for g in range(0, long_from, _GROUP):
        idx = order[g:min(g + _GROUP, long_from)]
        out[idx] = _raw_crc_group(padded, starts[idx] + lengths[idx] + _LONG + 4, lengths[idx])
    short = order[:long_from]
    out[short] ^= _init_term(lengths[short]) ^ np.uint32(_U32)
    return out


_LONG = 1 << 16
_GROUP = 16384


def _raw_crc_group(padded: np.ndarray, ends: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Register (started at 0) after each record; ``padded[ends[i] - lengths[i]: ends[i]]``
    is record i, and at least ``max(lengths) + 3`` bytes precede every end."""
    width = int(-(-int(lengths.max()) // 4) * 4) or 4
    rows = np.lib.stride_tricks.sliding_window_view(padded, width)[ends - width]
    rows[np.arange(width)[None, :] < (width - lengths)[:, None]] = 0
    words = np.ascontiguousarray(rows.view("<u4").T)  # (width/4) x N, a column per record
    t0, t1, t2, t3 = _TABLES
    b8, b16, b24, ff = np.uint32(8), np.uint32(16), np.uint32(24), np.uint32(0xFF)
    crc = np.zeros(len(ends), dtype=np.uint32)
    for w in words:
        crc ^= w
        crc = t3[crc & ff] ^ t2[(crc >> b8) & ff] ^ t1[(crc >> b16) & ff] ^ t0[crc >> b24]
    return crc


# --------------------------------------------------------------------------- reading

@dataclass
class RecordBlock:
    """The records of one read block: ``buf[starts[i] : starts[i] + lengths[i]]`` is the
    data of record ``first_index + i``, which begins (header included) at file offset
    ``offsets[i]``."""

    buf: bytes
    starts: np.ndarray  # int64, positions of the data in buf
    lengths: np.ndarray  # int64
    offsets: np.ndarray  # int64, file offset of each record's header
    first_index: int
    bytes_done: int  # file offset just past this block's last record

    def __len__(self) -> int:
        return len(self.starts)

    def record(self, i: int) -> bytes:
        s = int(self.starts[i])
        return self.buf[s:s + int(self.lengths[i])]

    def __iter__(self) -> Iterator[bytes]:
        buf = self.buf
        for s, n in zip(self.starts.tolist(), self.lengths.tolist()):
            yield buf[s:s + n]


def _where(path: str, index: int, offset: int) -> str:
    return f"{path}: record #{index} at byte offset {offset}"


def iter_record_blocks(path: str | os.PathLike, block_size: int = 8 << 20,
                       check_crc: bool = True) -> Iterator[RecordBlock]:
    """Stream the records of a TFRecord file in blocks of about ``block_size`` bytes.

    Every length header and every data CRC is checked (unless ``check_crc`` is false) before
    a block is yielded. Errors name the file, the record's index and the byte offset of its
    header: a CRC mismatch, a length that runs past the end of the file, or trailing bytes
    too short to be a header (truncation).
    """
    path_s = str(path)
    size = os.path.getsize(path_s)
    index = 0
    file_pos = 0  # file offset of buf[0]
    buf = b""
    with open(path_s, "rb") as f:
        want = block_size  # bytes to read next: a block, or what the pending record lacks
        eof = False
        while True:
            if not eof:
                chunk = f.read(want)
                eof = len(chunk) < want
                buf = buf + chunk if buf else chunk
            starts: list[int] = []
            lens: list[int] = []
            pos = 0
            n_buf = len(buf)
            unpack = _LEN.unpack_from
            want = block_size
            while pos + HEADER <= n_buf:
                (length,) = unpack(buf, pos)
                end = pos + HEADER + length + FOOTER
                if end > n_buf:
                    # Does not fit in what we have: either it continues in the next block,
                    # or the length is corrupt / the file truncated. Never trust a length
                    # whose header CRC is wrong (it may claim petabytes).
                    _check_header(buf, pos, path_s, index + len(starts), file_pos + pos)
                    if file_pos + end > size:
                        raise TFRecordError(
                            f"{_where(path_s, index + len(starts), file_pos + pos)}: truncated "
                            f"file: the record declares {length} data bytes, only "
                            f"{max(0, size - (file_pos + pos) - HEADER)} bytes follow its "
                            f"header (file size {size})")
                    want = max(block_size, end - n_buf)
                    break
                starts.append(pos + HEADER)
                lens.append(length)
                pos = end
            if not starts:
                if eof:
                    if pos < n_buf:
                        raise TFRecordError(
                            f"{_where(path_s, index, file_pos + pos)}: truncated file: "
                            f"{n_buf - pos} trailing bytes are too short for a record "
                            f"header ({HEADER} bytes)")
                    return
                continue  # the pending record is longer than a block: read what it lacks
            st = np.array(starts, dtype=np.int64)
            ln = np.array(lens, dtype=np.int64)
            offsets = st - HEADER + file_pos
            if check_crc:
                _check_block(buf, st, ln, offsets, index, path_s)
            yield RecordBlock(buf, st, ln, offsets, index, file_pos + pos)
            index += len(starts)
            file_pos += pos
            buf = buf[pos:]
            if eof and not buf:
                return


def _check_header(buf: bytes, pos: int, path: str, index: int, offset: int) -> None:
    want = _U32S.unpack_from(buf, pos + 8)[0]
    got = masked_crc32c(buf[pos:pos + 8])
    if want != got:
        (length,) = _LEN.unpack_from(buf, pos)
        raise TFRecordError(
            f"{_where(path, index, offset)}: length header CRC mismatch (stored 0x{want:08X}, "
            f"computed 0x{got:08X}; declared length {length}): the file is corrupt")


def _check_block(buf: bytes, starts: np.ndarray, lengths: np.ndarray, offsets: np.ndarray,
                 first_index: int, path: str) -> None:
    arr = np.frombuffer(buf, dtype=np.uint8)
    hdr = starts - HEADER
    # stored CRCs: 4 bytes after each length field and after each data
    stored_h = _gather_u32(arr, hdr + 8)
    stored_d = _gather_u32(arr, starts + lengths)
    bad_h = np.flatnonzero(_mask_many(crc32c_many(arr, hdr, np.full_like(hdr, 8))) != stored_h)
    bad_d = np.flatnonzero(_mask_many(crc32c_many(arr, starts, lengths)) != stored_d)
    first_h = int(bad_h[0]) if len(bad_h) else None
    first_d = int(bad_d[0]) if len(bad_d) else None
    if first_h is not None and (first_d is None or first_h <= first_d):
        i = first_h
        _check_header(buf, int(hdr[i]), path, first_index + i, int(offsets[i]))
    if first_d is not None:
        i = first_d
        s, n = int(starts[i]), int(lengths[i])
        want = int(stored_d[i])
        got = masked_crc32c(buf[s:s + n])
        raise TFRecordError(
            f"{_where(path, first_index + i, int(offsets[i]))}: data CRC mismatch (stored "
            f"0x{want:08X}, computed 0x{got:08X}; {n} data bytes starting at byte offset "
            f"{int(offsets[i]) + HEADER}): the file is corrupt")


def _gather_u32(arr: np.ndarray, pos: np.ndarray) -> np.ndarray:
    b = arr[pos[:, None] + np.arange(4)].astype(np.uint32)
    return b[:, 0] | (b[:, 1] << np.uint32(8)) | (b[:, 2] << np.uint32(16)) | (b[:, 3] << np.uint32(24))


def read_records(path: str | os.PathLike, check_crc: bool = True) -> Iterator[bytes]:
    """Every record's data, in file order (streamed; see :func:`iter_record_blocks`)."""
    for block in iter_record_blocks(path, check_crc=check_crc):
        yield from block


# --------------------------------------------------------------------------- writing

def frame(data: bytes) -> bytes:
    """One TFRecord frame around ``data`` (scalar CRC; for tests and small files)."""
    header = _LEN.pack(len(data))
    return (header + _U32S.pack(masked_crc32c(header)) + data
            + _U32S.pack(masked_crc32c(data)))


class TFRecordWriter:
    """Write records to a TFRecord file; frames are built in batches with vectorised CRCs.

    Use as a context manager; :meth:`write` takes one record's bytes.
    """

    def __init__(self, path: str | os.PathLike, batch: int = 20000):
        self.path = Path(path)
        self._f = open(self.path, "wb")
        self._pending: list[bytes] = []
        self._batch = batch
        self.count = 0

    def write(self, data: bytes) -> None:
        self._pending.append(bytes(data))
        if len(self._pending) >= self._batch:
            self._flush()

    def _flush(self) -> None:
        recs = self._pending
        if not recs:
            return
        self._pending = []
        lengths = np.array([len(r) for r in recs], dtype=np.int64)
        headers = lengths.astype("<u8").tobytes()
        hbuf = np.frombuffer(headers, dtype=np.uint8)
        hcrc = _mask_many(crc32c_many(hbuf, np.arange(len(recs), dtype=np.int64) * 8,
                                      np.full(len(recs), 8, dtype=np.int64))).astype("<u4")
        body = b"".join(recs)
        dbuf = np.frombuffer(body, dtype=np.uint8)
        dstarts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        dcrc = _mask_many(crc32c_many(dbuf, dstarts, lengths)).astype("<u4")
        hc = hcrc.tobytes()
        dc = dcrc.tobytes()
        parts = []
        for i, r in enumerate(recs):
            parts += (headers[8 * i:8 * i + 8], hc[4 * i:4 * i + 4], r, dc[4 * i:4 * i + 4])
        self._f.write(b"".join(parts))
        self.count += len(recs)

    def close(self) -> None:
        if self._f.closed:
            return
        self._flush()
        self._f.close()

    def __enter__(self) -> "TFRecordWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_records(path: str | os.PathLike, records: Iterable[bytes]) -> int:
    """Write ``records`` to a new TFRecord file at ``path``; returns how many were written."""
    with TFRecordWriter(path) as w:
        for r in records:
            w.write(r)
    return w.count
