"""Sweep executors, one file each, registered by name (``local``, ``ray``; a plugin may add
one with ``@EXECUTORS.register``)."""
from __future__ import annotations

from ...registry import Registry
from ..spec import SweepError

EXECUTORS: Registry = Registry("executor", __name__)


def make_executor(kind: str, gpus: int = 0, ray_address: str | None = None,
                  cpus_per_run: int | None = None, workers: int | None = None):
    """The registered executor ``kind`` built from the sweep's executor settings."""
    if kind not in EXECUTORS:
        raise SweepError(str(EXECUTORS.unknown(kind)))
    return EXECUTORS.get(kind).from_settings(gpus=gpus, ray_address=ray_address,
                                             cpus_per_run=cpus_per_run, workers=workers)


__all__ = ["EXECUTORS", "make_executor"]
