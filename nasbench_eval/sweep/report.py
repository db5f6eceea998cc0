"""The end of a sweep on the terminal: the leaderboard of its runs (or a plain table), the
failures and the counts."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

from .index import sweep_index_path
from .spec import DONE

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
    """The analysis leaderboard of the grid's finished and diverged runs, when
    ``nasbench_eval.analysis`` provides ``load_runs``, ``leaderboard`` and
    ``format_leaderboard``; else ``(None, why)``."""
    import importlib

    try:
        analysis = importlib.import_module("nasbench_eval.analysis")
    except ImportError:
        return None, None
    if not all(hasattr(analysis, f) for f in ("load_runs", "leaderboard", "format_leaderboard")):
        return None, None
    paths = [c["path"] for c in doc["cells"]
             if c["status"] in DONE and (Path(c["path"]) / "summary.json").exists()]
    if not paths:
        return None, None
    try:
        runs = analysis.load_runs(paths)
        return analysis.format_leaderboard(analysis.leaderboard(runs, metric="final")), None
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
        if c["status"] == "failed":
            print(f"failed: {c['run_id']}: {c['error']}", file=stream)
    print(_counts_line(doc), file=stream, flush=True)
