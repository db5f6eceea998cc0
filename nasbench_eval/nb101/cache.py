"""The NAS-Bench-101 cache: its file name and format version, the kept metrics, where it
lives, and the errors of a missing cache or an unknown hash. Shared by the importer
(:mod:`.importer`) that writes the cache and the table (:mod:`.table`) that reads it."""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataUnavailableError, NasbenchEvalError

__all__ = ["CACHE_NAME", "DEFAULT_BUDGET", "FORMAT_VERSION", "IMPORT_COMMAND", "METRICS",
           "CacheMissingError", "UnknownHashError", "default_cache_path", "resolve_cache_path"]

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
