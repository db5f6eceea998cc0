"""Published reference numbers (``baselines/*.csv``): one row per figure a paper prints.

Columns: ``paper, table, dataset, space, method, method_id, metric, value, unit, setting,
confirmed, source, note``. ``method_id`` names our implementation of the paper's method where
there is one (``darts``, ``darts-2nd``, ``sdarts-rs``, ...). ``confirmed`` is false for the
values ``shared/reference/darts-family.md`` marks [U]. Published errors are of architectures
retrained from scratch; this harness's anytime error is the supernet oracle's, so the two are
shown side by side, never mixed into one statistic.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .runs import AnalysisError

BASELINE_COLUMNS = ["paper", "table", "dataset", "space", "method", "method_id", "metric",
                    "value", "unit", "setting", "confirmed", "source", "note"]
# metrics that become published leaderboard rows, and what fills the row
ERROR_METRICS = ("test_error", "val_error")
SPREAD_METRICS = {"test_error": "test_error_spread", "val_error": "val_error_spread"}


def baselines_dir() -> Path:
    """``$NASBENCH_EVAL_BASELINES``, else the copy inside an installed wheel
    (``nasbench_eval/_baselines``), else the source tree's ``baselines/`` (as spec_dir)."""
    env = os.environ.get("NASBENCH_EVAL_BASELINES")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for cand in (here.parent / "_baselines", here.parent.parent / "baselines"):
        if cand.is_dir() and any(cand.glob("*.csv")):
            return cand
    raise AnalysisError("cannot find the published baselines (baselines/*.csv); set "
                        "NASBENCH_EVAL_BASELINES or pass --baselines-dir")


def load_baselines(directory: str | Path | None = None) -> pd.DataFrame:
    """Every ``*.csv`` in ``directory`` (default :func:`baselines_dir`), with a ``file`` column;
    ``value`` is numeric and ``confirmed`` boolean."""
    d = Path(directory) if directory is not None else baselines_dir()
    files = sorted(d.glob("*.csv"))
    if not files:
        raise AnalysisError(f"{d}: no baseline CSV files")
    frames = []
    for f in files:
        try:
            t = pd.read_csv(f, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise AnalysisError(f"{f}: malformed CSV ({exc})") from None
        missing = [c for c in BASELINE_COLUMNS if c not in t.columns]
        if missing:
            raise AnalysisError(f"{f}: missing column(s) {', '.join(missing)}")
        bad = ~t["confirmed"].str.lower().isin(["true", "false"])
        if bad.any():
            raise AnalysisError(f"{f}: row {int(bad.idxmax()) + 2}: 'confirmed' must be true or "
                                f"false, got '{t.loc[bad.idxmax(), 'confirmed']}'")
        values = pd.to_numeric(t["value"], errors="coerce")
        if values.isna().any():
            i = int(values.isna().idxmax())
            raise AnalysisError(f"{f}: row {i + 2}: 'value' is not a number: '{t.at[i, 'value']}'")
        t["value"] = values
        t["confirmed"] = t["confirmed"].str.lower() == "true"
        t["file"] = f.name
        frames.append(t)
    return pd.concat(frames, ignore_index=True)


def published_rows(baselines: pd.DataFrame, blocks: set[tuple[str, str]] | None = None
                   ) -> pd.DataFrame:
    """Leaderboard-shaped rows (``kind="published"``) for the published test/val errors and
    parameter-free fractions, restricted to the (space, dataset) ``blocks`` when given.

    Figures of one (paper, table, dataset, space, method, setting) make one row: the ``±``
    part fills ``std_pct``; a search cost in GPU-days of the same paper/table
    row fills ``search_hours`` (x 24). Errors stay in percent, as printed.
    """
    b = baselines
    if blocks is not None:
        keep = [(s, d) in blocks for s, d in zip(b["space"], b["dataset"])]
        b = b[keep]
    key = ["paper", "table", "dataset", "space", "method", "setting"]
    rows = []
    for k, g in b.groupby(key, sort=False):
        by_metric = {m: r for m, r in zip(g["metric"], g.to_dict("records"))}
        main = next((m for m in ERROR_METRICS if m in by_metric), None)
        pf = by_metric.get("param_free_fraction")
        if main is None and pf is None:
            continue
        first = by_metric[main] if main else pf
        row = dict(zip(key, k))
        row.update(kind="published", method_id=first["method_id"],
                   confirmed=bool(all(r["confirmed"] for r in by_metric.values())),
                   source=first["source"], note=first["note"],
                   metric=main or "param_free_fraction")
        if main:
            row["mean_pct"] = by_metric[main]["value"]
            spread = by_metric.get(SPREAD_METRICS[main])
            row["std_pct"] = spread["value"] if spread else float("nan")
            row["spread_unit"] = spread["unit"] if spread else ""
        if pf is not None:
            row["param_free_frac"] = pf["value"]
        if "params_m" in by_metric:
            row["params_m"] = by_metric["params_m"]["value"]
        cost = by_metric.get("search_cost_gpu_days")
        if cost is not None:
            row["search_hours"] = cost["value"] * 24.0
            row["device"] = "GPU (published)"
        elif "search_gpu_hours" in by_metric:
            row["search_hours"] = by_metric["search_gpu_hours"]["value"]
            row["device"] = "GPU (published)"
        rows.append(row)
    return pd.DataFrame(rows)
