"""The sweep index, ``<out>/sweeps/<sweep-id>.json``, and the lock that lets one process drive
a sweep. The run directories stay the source of truth: the index is rebuilt from their
``summary.json`` files whenever a sweep starts."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .spec import DONE, Cell, SweepError, SweepSpec, now


def sweep_index_path(out: str | os.PathLike, sweep: str) -> Path:
    return Path(out) / "sweeps" / f"{sweep}.json"


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return None


class SweepIndex:
    """``<out>/sweeps/<sweep-id>.json``: written atomically by the one process driving the sweep."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc

    @classmethod
    def open(cls, spec: SweepSpec, sid: str, cells: list[Cell]) -> SweepIndex:
        path = sweep_index_path(spec.out, sid)
        old: dict[str, Any] = {}
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except ValueError:
                old = {}
        old_cells = {c.get("run_id"): c for c in old.get("cells", [])}
        doc = {"sweep_id": sid, "name": spec.name, "created": old.get("created", now()),
               "updated": now(), "out": spec.out, "grid": spec.grid(),
               "size": len(cells), "counts": {}, "invocations": old.get("invocations", []),
               "cells": []}
        for cell in cells:
            prev = old_cells.get(cell.run_id, {})
            entry = {"index": cell.index, "run_id": cell.run_id, **cell.label(),
                     "path": str(cell.path), "status": "pending", "epochs": cell.config.epochs,
                     "epochs_done": 0, "final_test_error": None, "error": None,
                     "traceback": None, "attempts": prev.get("attempts", 0),
                     "started": prev.get("started"), "ended": prev.get("ended")}
            if prev.get("status") == "failed":  # keep the record until it is retried
                entry.update(status="failed", error=prev.get("error"),
                             traceback=prev.get("traceback"))
            summary = _read_summary(cell.path)
            if summary:
                status = summary.get("status")
                entry.update(epochs_done=summary.get("epochs_done") or 0,
                             final_test_error=summary.get("final_test_error"))
                if status in DONE:
                    entry.update(status=status, error=summary.get("error"), traceback=None)
                elif status == "failed":  # the runner recorded the exception itself
                    entry.update(status="failed", error=entry["error"] or summary.get("error"))
                elif entry["status"] != "failed":
                    entry["status"] = "interrupted"  # running or interrupted: nobody drives it
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
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)


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

