"""Progress of a sweep on the terminal: a live table, or one line per event in a log."""
from __future__ import annotations

import shutil
import time
from typing import Any, TextIO

from ..rundir import FAILED, RUNNING
from .spec import Cell

_COLUMNS = ("#", "run id", "status", "epochs", "test err", "time")


class ProgressTable:
    """A live table on a terminal; one line per event otherwise (readable in logs)."""

    def __init__(self, cells: list[Cell], stream: TextIO, quiet: bool = False,
                 live: bool | None = None) -> None:
        self.cells = cells
        self.stream = stream
        self.quiet = quiet
        self.live = (stream.isatty() if live is None else live) and not quiet
        self.rows: dict[int, dict[str, Any]] = {}
        self._drawn = 0
        self._last_draw = 0.0
        self._width = len(str(len(cells)))

    def set(self, cell: Cell, **row: Any) -> None:
        self.rows.setdefault(cell.index, {}).update(row)

    def event(self, cell: Cell, kind: str, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            self.draw(force=kind in ("end", "running"))
        else:
            n = f"[{cell.index + 1:>{self._width}}/{len(self.cells)}]"
            print(f"{n} {cell.run_id}  {text}", file=self.stream, flush=True)

    def line(self, text: str) -> None:
        if self.live and self._drawn:
            self.draw(force=True)
        print(text, file=self.stream, flush=True)
        self._drawn = 0

    def _row(self, cell: Cell) -> tuple[str, ...]:
        r = self.rows.get(cell.index, {})
        err = r.get("test_error")
        took = r.get("time_s")
        return (str(cell.index + 1), cell.run_id, r.get("status", "pending"),
                f"{r.get('epochs_done') or 0}/{cell.config.epochs}",
                "" if err is None else f"{err:.4f}", "" if took is None else f"{took:.0f}s")

    def table(self, max_rows: int | None = None) -> list[str]:
        shown = self.cells
        if max_rows is not None and len(shown) > max_rows:  # too long: the active and failed
            active = [c for c in shown if self.rows.get(c.index, {}).get("status")
                      in (RUNNING, "queued", FAILED)]
            shown = sorted(active[:max_rows], key=lambda c: c.index)
        rows = [_COLUMNS] + [self._row(c) for c in shown]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        counts: dict[str, int] = {}
        for c in self.cells:
            s = self.rows.get(c.index, {}).get("status", "pending")
            counts[s] = counts.get(s, 0) + 1
        lines.append(", ".join(f"{v} {k}" for k, v in counts.items()))
        return lines

    def draw(self, force: bool = False) -> None:
        if not force and time.time() - self._last_draw < 0.25:
            return
        size = shutil.get_terminal_size((100, 40))
        # one screen line per table line, or the cursor moves of the next redraw miss
        lines = [ln[:max(20, size.columns - 1)] for ln in self.table(max(3, size.lines - 4))]
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)
        self._last_draw = time.time()

