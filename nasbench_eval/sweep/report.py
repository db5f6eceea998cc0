"""The end of a sweep on the terminal: the leaderboard of its runs (or a plain table), the
failures and the counts."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from ..rundir import DONE, FAILED, SUMMARY_FILE
from .index import sweep_index_path


def _counts_line(doc: dict[str, Any]) -> str:
    counts = doc.get("counts", {})
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    n = doc["size"]
    return (f"sweep {doc['sweep_id']}: {n} run{'s' if n != 1 else ''}: {parts}; "
            f"index {sweep_index_path(doc['out'], doc['sweep_id'])}")


def plain_table(doc: dict[str, Any]) -> str:
    """(method, space, dataset, seed, status, final_test_error) per cell, in grid order."""
    head = ("method", "space", "dataset", "seed", "status", "final_test_error")
    rows = [head] + [(c["method"], c["space"], c["dataset"], str(c["seed"]), c["status"],
                      "" if c.get("final_test_error") is None else f"{c['final_test_error']:.4f}")
                     for c in doc["cells"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def leaderboard_text(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    """The analysis leaderboard of the grid's finished and diverged runs: ``(text, None)``,
    ``(None, None)`` when no run is done, ``(None, why)`` when the analysis fails (the sweep
    itself succeeded: the caller prints a plain table instead)."""
    paths = [c["path"] for c in doc["cells"]
             if c["status"] in DONE and (Path(c["path"]) / SUMMARY_FILE).exists()]
    if not paths:
        return None, None
    try:
        # imported here: the analysis brings pandas, which a sweep needs only at its end
        from ..analysis import format_leaderboard, leaderboard, load_runs

        runs = load_runs(paths)
        return format_leaderboard(leaderboard(runs, metric="final")), None
    except Exception as exc:  # noqa: BLE001 - the sweep itself succeeded: fall back
        return None, f"(leaderboard unavailable: {type(exc).__name__}: {exc})"


def print_summary(doc: dict[str, Any], stream: TextIO | None = None) -> None:
    """The leaderboard of the grid (or a plain table), failed runs, and the counts."""
    stream = stream or sys.stdout
    board, note = leaderboard_text(doc)
    print("", file=stream)
    if note:
        print(note, file=stream)
    print(board if board is not None else plain_table(doc), file=stream)
    for c in doc["cells"]:
        if c["status"] == FAILED:
            print(f"failed: {c['run_id']}: {c['error']}", file=stream)
    print(_counts_line(doc), file=stream, flush=True)
