"""Keep freed memory in the process during a CPU search (glibc's malloc thresholds).

Why: a search step allocates and frees the same activations every step. glibc's malloc
serves large blocks with ``mmap`` and gives freed memory at the top of its heap back to the
OS once more than its trim threshold (a few MiB, raised dynamically) is free, so each step
faults the same memory in again, page by page: at the small benchmark setting a packed step
of 8 seeds took ~30,000 minor page faults and 3.1-3.3 s, 2.2-2.3 s with the thresholds below
and no faults (``benchmarks/seed_packing.py``; docs/speed.md). This does for the CPU what
PyTorch's caching allocator does on CUDA: the process keeps its peak working set instead of
returning and re-faulting it. It changes timings only, never a computed value.

Applied once per process by :func:`retain_freed_memory` (called when a CPU search is
built, and by ``evaluate`` on the CPU); ``NASBENCH_EVAL_MALLOC=system`` leaves malloc as it
is. Not glibc (macOS, musl): nothing to do.
"""
from __future__ import annotations

import os

MALLOC_ENV = "NASBENCH_EVAL_MALLOC"
"""``retain`` (default) or ``system``: whether a CPU search sets the thresholds below."""

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 2 ** 31 - 1
"""Free memory at the heap top that glibc keeps rather than returning (its maximum)."""
MMAP_THRESHOLD = 32 * 2 ** 20
"""Blocks below this come from the heap, where freed memory is reused (glibc's maximum on
64-bit: the largest activations of a packed search step are a few MiB; data sets stay
mmapped)."""

_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Set glibc's trim and mmap thresholds for this process (once); True when they are set.

    A wrong ``$NASBENCH_EVAL_MALLOC`` raises :class:`~nasbench_eval.errors.NasbenchEvalError`
    naming the valid values."""
    global _applied
    mode = os.environ.get(MALLOC_ENV, "retain").strip() or "retain"
    if mode not in ("retain", "system"):
        from .errors import NasbenchEvalError

        raise NasbenchEvalError(f"${MALLOC_ENV}={mode!r}: expected 'retain' (the default) or "
                                f"'system'")
    if mode == "system":
        return False
    if _applied is None:
        _applied = _set_thresholds()
    return _applied


def _set_thresholds() -> bool:
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; setting either threshold turns off glibc's dynamic ones
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) & bool(
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
