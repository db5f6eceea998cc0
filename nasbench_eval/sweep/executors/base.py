"""What every sweep executor shares: the one-cell body (:func:`run_cell`), the events an
executor reports and the progress of runs in other processes.

An executor is a class with a ``name``, registered in :data:`EXECUTORS` (one file in this
package), built by :meth:`from_settings` from the sweep's executor settings, with ``check()``
(before anything is created) and ``execute(cells, emit)``. ``emit(cell, kind, info)`` reports
``queued`` / ``running`` (``info["device"]`` optional), ``epoch`` (``epochs_done``,
``test_error``) and ``end`` (the outcome dict of :func:`run_cell`).
"""
from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any, ClassVar

from ...config import RunConfig
from ...rundir import FAILED, INTERRUPTED, RUNNING, SUMMARY_FILE, read_summary
from ..spec import Cell

Emit = Callable[[Cell, str, dict[str, Any]], None]


class Executor:
    """The executor interface; subclasses set ``name`` and implement :meth:`execute`."""

    name: ClassVar[str] = ""

    @classmethod
    def from_settings(cls, gpus: int = 0, ray_address: str | None = None,
                      cpus_per_run: int | None = None, workers: int | None = None) -> Executor:
        """The executor for the sweep's settings (``--gpus``, ``--ray-address``,
        ``--cpus-per-run``, ``--workers``); refuses those it has no use for."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise :class:`SweepError` if the executor cannot run here (called before any run
        directory or index is created). Default: nothing to check."""

    def execute(self, cells: list[Cell], emit: Emit) -> None:
        raise NotImplementedError


def run_cell(config: dict[str, Any], threads: int | None = None,
             on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or resume, or skip when done) one cell; never raises for a failing run.

    Returns ``{"status", "error", "traceback", "epochs_done", "final_test_error"}`` where status
    is the run's (``finished``/``diverged``) or ``failed`` when it raised. Used in-process by
    the local executor, in worker processes (GPUs) and as the body of a Ray task.
    """
    import torch

    from ...runner import run

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = RunConfig.from_dict(config)
        run_dir = run(cfg, resume=True, on_epoch_end=on_epoch_end)
        summary = read_summary(run_dir, unreadable_ok=True) or {}
        return {"status": summary.get("status", FAILED), "error": summary.get("error"),
                "traceback": None, "epochs_done": summary.get("epochs_done"),
                "final_test_error": summary.get("final_test_error")}
    except Exception as exc:  # noqa: BLE001 - recorded in the index, the sweep goes on
        return {"status": FAILED, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "epochs_done": None,
                "final_test_error": None}
    finally:
        if threads:
            torch.set_num_threads(previous_threads)


def failed(error: str) -> dict[str, Any]:
    return {"status": FAILED, "error": error, "traceback": None, "epochs_done": None,
            "final_test_error": None}


def interrupted() -> dict[str, Any]:
    return {"status": INTERRUPTED, "error": "interrupted (rerun the sweep to resume)",
            "traceback": None, "epochs_done": None, "final_test_error": None}


class SummaryWatch:
    """Epoch progress of runs in other processes, read from their summary.json."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[int, float]] = {}

    def poll(self, cell: Cell, since: float, emit: Emit) -> None:
        p = cell.path / SUMMARY_FILE
        try:
            mtime = p.stat().st_mtime
        except OSError:
            return
        last_epochs, last_mtime = self.seen.get(cell.index, (-1, 0.0))
        if mtime < since - 1 or mtime == last_mtime:
            return
        s = read_summary(cell.path, unreadable_ok=True)
        if not s:
            return
        if cell.index not in self.seen:
            emit(cell, "running", {})
        done = s.get("epochs_done") or 0
        self.seen[cell.index] = (done, mtime)
        if done > max(last_epochs, 0) and s.get("status") == RUNNING:
            emit(cell, "epoch", {"epochs_done": done, "test_error": s.get("final_test_error")})

