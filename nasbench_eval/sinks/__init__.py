"""Experiment-tracking sinks, one file each, registered by name (``tensorboard``,
``mlflow``; a plugin may add one with ``@SINKS.register``).

``nasbench-eval run --log-to tensorboard,mlflow`` (``RunConfig.log_to``) mirrors a run into
those tools; off by default. Importing this package imports neither tool: a sink imports its
package when a run starts it, and a missing package is a warning, not an error.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..registry import Registry
from .base import EpochRecord, RunInfo, Sink, Sinks, SinkWarning

SINKS: Registry = Registry("sink", __name__)


def check_sinks(names: Iterable[str]) -> None:
    """Raise :class:`~nasbench_eval.errors.UnknownNameError` (valid choices listed) for a
    name that is not a registered sink; before any work, so a typo is not a mere warning."""
    for name in names:
        if name not in SINKS:
            raise SINKS.unknown(name)


def open_sinks(names: Iterable[str], run_dir: Path, run_id: str, config: dict[str, Any],
               history: list[dict[str, Any]]) -> Sinks:
    """The run's sinks, started (each one that cannot start has warned and is left out)."""
    names = list(names)
    info = RunInfo(Path(run_dir), run_id, config, list(history))
    return Sinks({n: SINKS.get(n) for n in names}, info)


__all__ = ["SINKS", "EpochRecord", "RunInfo", "Sink", "SinkWarning", "Sinks", "check_sinks",
           "open_sinks"]
