"""Helpers shared by the test modules (pytest puts this folder on sys.path)."""
from __future__ import annotations

import csv
from pathlib import Path

TIME_COLUMNS = {"epoch_time_s", "wall_time_s", "oracle_time_s", "oracle_train_time_s",
                "oracle_cached"}
"""Columns that differ between otherwise identical runs (``oracle_cached``: whether another
run of the results directory trained the cell first)."""


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """metrics.csv rows without the timing columns, for comparing runs."""
    with open(Path(run_dir) / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIME_COLUMNS}
                for row in csv.DictReader(f)]
