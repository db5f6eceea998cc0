"""What every experiment-tracking sink shares: the interface, the records it receives and
the group that keeps a failing sink from touching the run.

A sink mirrors a search run into a tool people already watch runs in (TensorBoard, MLflow).
It is an execution setting (``RunConfig.log_to``, not in the run id): ``metrics.csv`` and the
other run-directory files stay the record, and a sink only copies from them. So a sink that
cannot start (package missing, server unreachable) or raises later warns once, is dropped
for the rest of the run, and changes nothing the run computes or writes (:class:`Sinks`).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np


class SinkWarning(UserWarning):
    """A sink failed and was dropped; the run goes on (its files are unaffected)."""


@dataclass
class RunInfo:
    """The run a sink mirrors, as known when it starts (after ``config.json`` is written)."""

    run_dir: Path
    run_id: str
    config: dict[str, Any]
    """``RunConfig.to_dict()`` of the resolved config."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """metrics rows of the epochs done before this start (a resumed run), oldest first."""


@dataclass
class EpochRecord:
    """One finished epoch: its metrics row (as in ``metrics.csv``), the derived genotype and
    the architecture's mixing weights (cell type -> array, e.g. edges x candidate ops)."""

    epoch: int
    row: Mapping[str, Any]
    genotype: dict[str, Any]
    genotype_text: str
    weights: dict[str, np.ndarray] = field(default_factory=dict)


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The numeric cells of a metrics row (bools and text left out), as floats."""
    return {k: float(v) for k, v in row.items()
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}


class Sink:
    """One tracking tool. Subclasses set ``name``, open their writer in ``__init__`` (raise
    there if they cannot: the run goes on without them) and mirror each epoch; ``close`` gets
    the run's final status (``finished``, ``failed``, ...; None when unknown)."""

    name: ClassVar[str] = ""
    package: ClassVar[str] = ""
    """The pip extra that provides the tool (named in the warning when it is missing)."""

    def __init__(self, info: RunInfo) -> None:
        self.info = info

    def log_epoch(self, record: EpochRecord) -> None:
        raise NotImplementedError

    def close(self, status: str | None) -> None:
        """Flush and release the writer. Default: nothing to release."""


class Sinks:
    """The run's sinks, each isolated: an exception of one (at start, per epoch, at close)
    becomes one :class:`SinkWarning` and that sink is dropped; the others go on."""

    def __init__(self, classes: Mapping[str, type[Sink]], info: RunInfo) -> None:
        self.active: dict[str, Sink] = {}
        for name, cls in classes.items():
            try:
                self.active[name] = cls(info)
            except ImportError as exc:
                extra = f" (pip install 'nasbench-eval[{cls.package}]')" if cls.package else ""
                self._drop(name, f"its package is not installed{extra}", exc)
            except Exception as exc:  # noqa: BLE001 - a sink never stops the run
                self._drop(name, "could not start", exc)

    def __bool__(self) -> bool:
        return bool(self.active)

    def _drop(self, name: str, what: str, exc: BaseException) -> None:
        self.active.pop(name, None)
        warnings.warn(f"--log-to {name}: {what}: {type(exc).__name__}: {exc}; the run goes on "
                      f"without it (metrics.csv and the run directory are unaffected)",
                      SinkWarning, stacklevel=3)

    def epoch(self, make_record: Callable[[], EpochRecord]) -> None:
        """Give every active sink the epoch; ``make_record`` is only called when one is
        active (a run without sinks does no extra work)."""
        if not self.active:
            return
        try:
            record = make_record()
        except Exception as exc:  # noqa: BLE001
            for name in list(self.active):
                self._drop(name, "the epoch record could not be built", exc)
            return
        for name, sink in list(self.active.items()):
            try:
                sink.log_epoch(record)
            except Exception as exc:  # noqa: BLE001
                self._drop(name, f"failed while logging epoch {record.epoch}", exc)

    def close(self, status: str | None) -> None:
        for name, sink in list(self.active.items()):
            try:
                sink.close(status)
            except Exception as exc:  # noqa: BLE001
                self._drop(name, "failed while closing", exc)
        self.active.clear()


__all__ = ["EpochRecord", "RunInfo", "Sink", "SinkWarning", "Sinks", "scalars"]
