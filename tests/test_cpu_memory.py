"""CPU searches keep freed memory (nasbench_eval.cpu_memory): fewer page faults, same values."""
from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from nasbench_eval.cpu_memory import MALLOC_ENV, retain_freed_memory
from nasbench_eval.errors import NasbenchEvalError

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="glibc's malloc thresholds")

# A step's pattern: many MiB-sized blocks allocated, written, then all freed. By default glibc
# hands them back to the OS (munmap, or trimming the free heap top), so the next step faults
# them in again page by page, unless retained. Straight malloc/free through ctypes: torch's
# own small allocations could sit at the heap top and hide the trim, depending on the
# environment.
_FAULTS = """
import ctypes, resource, sys
from nasbench_eval.cpu_memory import retain_freed_memory
print(retain_freed_memory(), file=sys.stderr)
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
faults = []
for step in range(6):
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [libc.malloc(2 ** 20) for _ in range(48)]  # 48 x 1 MiB
    for b in blocks:
        ctypes.memset(b, 1, 2 ** 20)
    for b in reversed(blocks):
        libc.free(b)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
print(max(faults[3:]))  # settled: after the heap has grown to the pattern
"""


def _faults(mode: str, monkeypatch) -> int:
    import os

    env = {**os.environ, MALLOC_ENV: mode, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", _FAULTS], capture_output=True, text=True,
                         env=env, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@glibc
def test_retained_memory_is_not_faulted_in_again(monkeypatch):
    system = _faults("system", monkeypatch)
    retain = _faults("retain", monkeypatch)
    # 48 MiB is 12,288 pages: re-faulted every step by default, reused when retained
    assert system > 5000, system
    assert retain < 500, retain


@glibc
def test_applied_once_and_opt_out(monkeypatch):
    monkeypatch.delenv(MALLOC_ENV, raising=False)
    assert retain_freed_memory() is True
    assert retain_freed_memory() is True
    monkeypatch.setenv(MALLOC_ENV, "system")
    assert retain_freed_memory() is False


def test_bad_setting_names_the_choices(monkeypatch):
    monkeypatch.setenv(MALLOC_ENV, "jemalloc")
    with pytest.raises(NasbenchEvalError, match="expected 'retain'.*or 'system'"):
        retain_freed_memory()
