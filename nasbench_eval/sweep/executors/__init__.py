"""Sweep executors, one file each, registered by name (``local``, ``ray``, ``slurm``; a plugin
may add one with ``@EXECUTORS.register``)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ...registry import Registry
from ..spec import SweepError

EXECUTORS: Registry = Registry("executor", __name__)


def make_executor(kind: str, gpus: int = 0, ray_address: str | None = None,
                  cpus_per_run: int | None = None, workers: int | None = None,
                  options: Mapping[str, Any] | None = None,
                  where: Callable[[str], str] | None = None):
    """The registered executor ``kind`` built from the sweep's executor settings and its own
    ``options`` (e.g. ``{"partition": "gpu"}`` for slurm; ``where(key)`` names their origin)."""
    if kind not in EXECUTORS:
        raise SweepError(str(EXECUTORS.unknown(kind)))
    cls = EXECUTORS.get(kind)
    return cls.from_settings(gpus=gpus, ray_address=ray_address, cpus_per_run=cpus_per_run,
                             workers=workers, options=cls.parse_options(options or {}, where))


__all__ = ["EXECUTORS", "make_executor"]
