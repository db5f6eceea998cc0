"""The sweep index, ``<out>/sweeps/<sweep-id>.json``, and the lock that lets one process drive
a sweep. The run directories stay the source of truth: the index is rebuilt from their
``summary.json`` files whenever a sweep starts."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..rundir import DONE, FAILED, INTERRUPTED, atomic_write, read_json, read_summary
from .spec import Cell, SweepError, SweepSpec, now

PENDING = "pending"
"""Index status of a cell no run has started yet (the others are the runs' own statuses)."""


def sweep_index_path(out: str | os.PathLike, sweep: str) -> Path:
    return Path(out) / "sweeps" / f"{sweep}.json"


class SweepIndex:
    """``<out>/sweeps/<sweep-id>.json``: written atomically by the one process driving the sweep."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc

    @classmethod
    def open(cls, spec: SweepSpec, sid: str, cells: list[Cell]) -> SweepIndex:
        path = sweep_index_path(spec.out, sid)
        try:
            old: dict[str, Any] = read_json(path) or {}
        except ValueError:  # a damaged index: rebuilt from the run directories
            old = {}
        old_cells = {c.get("run_id"): c for c in old.get("cells", [])}
        doc = {"sweep_id": sid, "name": spec.name, "created": old.get("created", now()),
               "updated": now(), "out": spec.out, "grid": spec.grid(),
               "size": len(cells), "counts": {}, "invocations": old.get("invocations", []),
               "cells": []}
        for cell in cells:
            prev = old_cells.get(cell.run_id, {})
            entry = {"index": cell.index, "run_id": cell.run_id, **cell.label(),
                     "path": str(cell.path), "status": PENDING, "epochs": cell.config.epochs,
                     "epochs_done": 0, "final_test_error": None, "error": None,
                     "traceback": None, "attempts": prev.get("attempts", 0),
                     "started": prev.get("started"), "ended": prev.get("ended")}
            if prev.get("job_ids"):  # the cluster jobs of earlier invocations (slurm)
                entry["job_ids"] = list(prev["job_ids"])
            if prev.get("status") == FAILED:  # keep the record until it is retried
                entry.update(status=FAILED, error=prev.get("error"),
                             traceback=prev.get("traceback"))
            summary = read_summary(cell.path, unreadable_ok=True)
            if summary:
                status = summary.get("status")
                entry.update(epochs_done=summary.get("epochs_done") or 0,
                             final_test_error=summary.get("final_test_error"))
                if status in DONE:
                    entry.update(status=status, error=summary.get("error"), traceback=None)
                elif status == FAILED:  # the runner recorded the exception itself
                    entry.update(status=FAILED, error=entry["error"] or summary.get("error"))
                elif entry["status"] != FAILED:
                    entry["status"] = INTERRUPTED  # running or interrupted: nobody drives it
            doc["cells"].append(entry)
        index = cls(path, doc)
        return index

    def cell(self, cell: Cell) -> dict[str, Any]:
        return self.doc["cells"][cell.index]

    def save(self) -> None:
        self.doc["updated"] = now()
        counts: dict[str, int] = {}
        for c in self.doc["cells"]:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
        self.doc["counts"] = counts
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # rundir's writer (a temporary name unique per writer); default=str: the grid may
        # hold values JSON has no type for
        atomic_write(self.path, json.dumps(self.doc, indent=2, default=str) + "\n")


class SweepLock:
    """One driver per sweep (an advisory lock, released by the OS even on SIGKILL)."""

    def __init__(self, path: Path) -> None:
        self.path, self.fh = path, None

    def __enter__(self) -> SweepLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")  # noqa: SIM115
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise SweepError(f"this sweep is already being run by another process "
                             f"(lock {self.path}); wait for it or stop it first") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fh is not None:
            self.fh.close()

