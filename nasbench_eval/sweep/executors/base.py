"""What every sweep executor shares: the one-cell body (:func:`run_cell`), the events an
executor reports and the progress of runs in other processes.

An executor is a class with a ``name``, registered in :data:`EXECUTORS` (one file in this
package), built by :meth:`from_settings` from the sweep's executor settings and its own typed
:attr:`options`, with ``check()`` (before anything is created), ``adopt(jobs)`` (the cluster
jobs an earlier invocation recorded), ``execute(cells, emit)`` and, for ``--pack K``,
``execute_packs(units, emit)`` (each unit a list of cells run as one packed search).
``emit(cell, kind, info)`` reports ``queued`` / ``running`` (``info["device"]``,
``info["pack"]`` and ``info["job_id"]`` optional; a job id is recorded in the index), ``epoch`` (``epochs_done``, ``test_error``) and ``end`` (the
outcome dict of :func:`run_cell`).
"""
from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ...config import RunConfig
from ...options import Option, OptionError
from ...rundir import FAILED, INTERRUPTED, RUNNING, SUMMARY_FILE, read_summary
from ..spec import Cell, SweepError

Emit = Callable[[Cell, str, dict[str, Any]], None]


class Executor:
    """The executor interface; subclasses set ``name`` and implement :meth:`execute`."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}
    """Settings of this executor alone (``slurm``: partition, time, ...): each becomes a flag
    ``--<name>-<key>`` and a key of the ``[<name>]`` table of a sweep file, parsed and checked
    by :meth:`parse_options` before anything runs."""
    packs_refused: ClassVar[str | None] = "it runs one run per unit of work"
    """Why this executor cannot run packs of seeds (``--pack K``; refused before anything
    runs), or None when :meth:`execute_packs` runs them."""

    @classmethod
    def from_settings(cls, gpus: int = 0, ray_address: str | None = None,
                      cpus_per_run: int | None = None, workers: int | None = None,
                      options: Mapping[str, Any] | None = None) -> Executor:
        """The executor for the sweep's settings (``--gpus``, ``--ray-address``,
        ``--cpus-per-run``, ``--workers``) and its own ``options`` (already parsed by
        :meth:`parse_options`, defaults filled in); refuses settings it has no use for."""
        raise NotImplementedError

    @classmethod
    def parse_options(cls, given: Mapping[str, Any],
                      where: Callable[[str], str] | None = None) -> dict[str, Any]:
        """:attr:`options`' defaults overridden by ``given``, each value parsed and checked by
        its :class:`Option`; ``where(key)`` names the flag or file field in messages."""
        where = where or (lambda k: f"--{cls.name}-{k.replace('_', '-')}")
        out = {k: opt.default for k, opt in cls.options.items()}
        for raw, value in given.items():
            key = str(raw).replace("-", "_")
            if key not in cls.options:
                valid = ", ".join(sorted(cls.options)) or "(none)"
                raise SweepError(f"{where(key)}: executor '{cls.name}' has no option "
                                 f"'{raw}'; its options: {valid}")
            try:
                out[key] = cls.options[key].parse(value, where(key))
            except OptionError as exc:
                raise SweepError(str(exc)) from None
        return out

    def check(self) -> None:
        """Raise :class:`SweepError` if the executor cannot run here (called before any run
        directory or index is created). Default: nothing to check."""

    def adopt(self, jobs: Mapping[int, Sequence[str]]) -> None:
        """The job ids the sweep index recorded for the cells about to run (by cell index),
        called before :meth:`execute`: an executor of a cluster follows a job of an earlier
        invocation that is still queued or running instead of starting the run twice.
        Default: nothing (local and Ray runs do not outlive the process that drove them)."""

    def execute(self, cells: list[Cell], emit: Emit) -> None:
        raise NotImplementedError

    def execute_packs(self, units: list[list[Cell]], emit: Emit) -> None:
        """Run ``units`` (``sweep --pack K``): each a list of cells that differ only in their
        seed, run as one packed search by :func:`nasbench_eval.sweep.packs.run_unit` (a unit
        of one cell is an ordinary run), with the same events per cell as :meth:`execute`.
        Called only when :attr:`packs_refused` is None; the default refuses."""
        raise SweepError(f"executor '{self.name}' cannot run packed seeds (--pack): "
                         f"{self.packs_refused}")


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

