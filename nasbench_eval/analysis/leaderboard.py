"""Leaderboards: one row per (space, dataset, method), and the methods x spaces table.

Errors are shown in percent (as the papers print them); the run files and the
:func:`~nasbench_eval.analysis.load_runs` table keep fractions. Runs that diverged or did not
finish are counted in their own columns, never dropped silently.
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._text import fmt, markdown_table, text_table
from .baselines import load_baselines, published_rows
from .runs import (UNFINISHED, AnalysisError, describe_metric, metric_values, mixed_settings,
                   parse_metric)

LEADERBOARD_COLUMNS = [
    "kind", "space", "dataset", "method", "metric", "epochs",
    "n_runs", "n_finished", "n_diverged", "n_unfinished", "n_stopped_early", "n",
    "mean_pct", "std_pct", "median_pct", "q25_pct", "q75_pct", "iqr_pct", "min_pct", "max_pct",
    "ci_low_pct", "ci_high_pct", "mean_rank", "rank_seeds",
    "search_hours", "total_hours", "device", "param_free_frac", "params_m", "n_settings",
    "paper", "table", "setting", "confirmed", "source", "method_id", "note", "spread_unit",
]
BOOT_DEFAULTS = {"ci": 0.95, "n_boot": 10_000, "seed": 0}


def bootstrap_ci(values: np.ndarray, ci: float = 0.95, n_boot: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap interval of the mean (``scipy.stats.bootstrap``, ``n_boot`` resamples):
    bias-corrected and accelerated, which covers better than the percentile interval at the
    5-10 seeds a leaderboard row has. A fresh ``default_rng(seed)`` per call, so every
    group's interval is reproducible and independent of the others. NaN for n < 2; values
    that are all equal give that value (no spread to resample); where BCa is undefined
    otherwise, scipy's percentile interval of the same resamples."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return math.nan, math.nan
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0])
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # BCa's degenerate cases: NaN
            res = bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=ci,
                            method=method, rng=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if not (math.isnan(lo) or math.isnan(hi)):
            break
    return lo, hi


def _device_summary(g: pd.DataFrame) -> str:
    kinds = sorted(set(g["device"]))
    if len(kinds) > 1:
        return "mixed: " + ", ".join(kinds)
    if kinds == ["cuda"]:
        names = sorted(set(g["device_name"]))
        return "cuda (" + ", ".join(names) + ")"
    return kinds[0]


def _epochs(g: pd.DataFrame) -> Any:
    e = sorted({int(v) for v in g["epochs"].dropna()})
    if not e:
        return math.nan
    return e[0] if len(e) == 1 else "/".join(map(str, e))


def _mean_ranks(df: pd.DataFrame) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(space, dataset, method) -> (mean rank in its block, seeds the rank averages over).

    Per seed that every method of the block has a value for, methods are ranked by error
    (1 = lowest, ties averaged); the mean over those seeds is the mean rank. A block without
    such a seed ranks the methods' mean errors instead (reported as 0 seeds)."""
    out: dict[tuple[str, str, str], tuple[float, int]] = {}
    have = df[df["error"].notna()]
    for (space, dataset), blk in have.groupby(["space", "dataset"], sort=False):
        piv = blk.groupby(["seed", "method"])["error"].mean().unstack("method")
        complete = piv.dropna()
        if len(complete):
            ranks = complete.rank(axis=1, method="average").mean()
            n = len(complete)
        else:
            ranks = blk.groupby("method")["error"].mean().rank(method="average")
            n = 0
        for m, r in ranks.items():
            out[(space, dataset, m)] = (float(r), n)
    return out


def leaderboard(runs: pd.DataFrame, metric: str = "final", *, ci: float = 0.95,
                n_boot: int = 10_000, seed: int = 0,
                baselines: bool | str | Path | pd.DataFrame | None = None,
                baseline_blocks: str = "matching") -> pd.DataFrame:
    """Long-form leaderboard of a :func:`load_runs` table: one row per (space, dataset, method).

    ``metric``: ``final`` | ``best`` | ``anytime-at-E`` (see :func:`metric_values`). Error
    columns (``*_pct``) are percent. ``n`` counts the runs that give a value; ``n_finished``,
    ``n_diverged`` and ``n_unfinished`` (running, interrupted or failed) count all runs of the row;
    ``n_stopped_early``: finished runs that a method ended early (e.g. DARTS-ES).
    ``std_pct`` is the sample standard deviation (ddof 1); ``q25/q75`` use linear
    interpolation; ``ci_*_pct`` is a BCa bootstrap of the mean (:func:`bootstrap_ci`,
    ``n_boot`` resamples, RNG seed ``seed``). ``search_hours``: mean wall time of one finished search in hours, on
    ``device`` (CPU hours are not GPU-hours); ``total_hours``: all runs of the row together.
    ``param_free_frac``: mean parameter-free share of the normal cell of the architectures the
    error is measured on. ``params_m``: mean parameter count (millions) of the evaluated
    networks (metric ``evaluated`` only). ``mean_rank``: see :func:`_mean_ranks`. ``n_settings`` > 1 means the
    row mixes runs with different settings (e.g. epochs): a warning says so.

    ``baselines``: True (the bundled ``baselines/``), a directory, or a frame from
    :func:`load_baselines` adds published rows (``kind="published"``) for the (space, dataset)
    blocks measured here (``baseline_blocks="space"``: every published dataset of the spaces
    measured here, e.g. NAS-Bench-201's CIFAR rows beside a search on digits; ``"all"``: every
    published block).
    """
    parse_metric(metric)
    if runs is None or len(runs) == 0:
        raise AnalysisError("no runs to rank")
    missing = [c for c in ("method", "space", "dataset", "seed", "status") if c not in runs]
    if missing:
        raise AnalysisError(f"the runs table lacks column(s) {', '.join(missing)}; make it "
                            f"with load_runs()")
    defaults = {"device": "unknown", "device_name": "unknown", "setting": "unknown",
                "epochs": math.nan, "wall_time_s": math.nan, "stopped_early_at_epoch": math.nan,
                "eval_params_m": math.nan}
    runs = runs.assign(**{c: v for c, v in defaults.items() if c not in runs})
    vals = metric_values(runs, metric)
    df = runs.assign(error=vals["error"], param_free=vals["param_free"])
    ranks = _mean_ranks(df)
    rows = []
    for (space, dataset, method), g in df.groupby(["space", "dataset", "method"], sort=True):
        x = g["error"].dropna().to_numpy(dtype=float) * 100.0
        fin = g[g["status"] == "finished"]
        lo, hi = bootstrap_ci(x, ci, n_boot, seed)
        q25, q75 = (np.percentile(x, [25, 75]) if x.size else (math.nan, math.nan))
        rank, rank_seeds = ranks.get((space, dataset, method), (math.nan, 0))
        pf = g["param_free"].dropna()
        rows.append(dict(
            kind="measured", space=space, dataset=dataset, method=method, metric=metric,
            epochs=_epochs(g), n_runs=len(g), n_finished=len(fin),
            n_diverged=int((g["status"] == "diverged").sum()),
            n_unfinished=int(g["status"].isin(UNFINISHED).sum()),
            n_stopped_early=int(g["stopped_early_at_epoch"].notna().sum()), n=int(x.size),
            mean_pct=float(x.mean()) if x.size else math.nan,
            std_pct=float(x.std(ddof=1)) if x.size > 1 else math.nan,
            median_pct=float(np.median(x)) if x.size else math.nan,
            q25_pct=float(q25), q75_pct=float(q75), iqr_pct=float(q75 - q25),
            min_pct=float(x.min()) if x.size else math.nan,
            max_pct=float(x.max()) if x.size else math.nan,
            ci_low_pct=lo, ci_high_pct=hi, mean_rank=rank, rank_seeds=rank_seeds,
            search_hours=(float(fin["wall_time_s"].mean() / 3600.0) if len(fin)
                          and fin["wall_time_s"].notna().any() else math.nan),
            total_hours=float(g["wall_time_s"].sum() / 3600.0),
            device=_device_summary(g),
            param_free_frac=float(pf.mean()) if len(pf) else math.nan,
            params_m=(float(g.loc[g["error"].notna(), "eval_params_m"].mean())
                      if metric == "evaluated" else math.nan),
            n_settings=int(g["setting"].nunique()),
        ))
    table = pd.DataFrame(rows)
    mixed = mixed_settings(df)
    if mixed:
        warnings.warn("leaderboard rows mixing runs of different settings (epochs, layers, "
                      "method options, ...): " + ", ".join(mixed), stacklevel=2)
    if baselines is not None and baselines is not False:
        b = baselines if isinstance(baselines, pd.DataFrame) else load_baselines(
            None if baselines is True else baselines)
        if baseline_blocks == "matching":
            blocks = set(zip(table["space"], table["dataset"]))
        elif baseline_blocks == "space":  # every published dataset of the spaces measured
            spaces = set(table["space"])
            blocks = {(s, d) for s, d in zip(b["space"], b["dataset"]) if s in spaces}
        else:
            blocks = None
        pub = published_rows(b, blocks)
        if len(pub):
            table = pd.concat([table, pub], ignore_index=True, sort=False)
    for c in LEADERBOARD_COLUMNS:
        if c not in table.columns:
            table[c] = math.nan
    table["_order"] = (table["kind"] != "measured").astype(int)
    table = (table.sort_values(["space", "dataset", "_order", "mean_pct", "method"],
                               na_position="last", kind="stable")
                  .drop(columns="_order").reset_index(drop=True))
    table = table[LEADERBOARD_COLUMNS]
    table.attrs.update(metric=metric, ci=ci, n_boot=n_boot, seed=seed)
    return table


# ----------------------------------------------------------------------------- rendering

def _meta(table: pd.DataFrame) -> dict[str, Any]:
    meta = {**BOOT_DEFAULTS, **{k: v for k, v in table.attrs.items() if k in BOOT_DEFAULTS}}
    measured = table[table["kind"] == "measured"]
    meta["metric"] = table.attrs.get("metric") or (measured["metric"].iloc[0] if len(measured)
                                                   else "final")
    return meta


def _pub_label(r: Any) -> str:
    paper = str(r.paper).split(" ")[0]
    return f"{r.method} [published: {paper} {r.table}]"


def _counts_suffix(r: Any) -> str:
    extra = []
    if r.n_diverged:
        extra.append(f"{int(r.n_diverged)} div.")
    if r.n_unfinished:
        extra.append(f"{int(r.n_unfinished)} unf.")
    if r.n_stopped_early:
        extra.append(f"{int(r.n_stopped_early)} stopped early")
    return f"(n={int(r.n)}" + ("; " + ", ".join(extra) if extra else "") + ")"


def _mean_std(r: Any, digits: int = 2) -> str:
    if isinstance(r.mean_pct, float) and math.isnan(r.mean_pct):
        return "-"
    s = fmt(r.mean_pct, digits)
    if not (isinstance(r.std_pct, float) and math.isnan(r.std_pct)):
        s += " ± " + fmt(r.std_pct, digits)
    return s


def _hours(x: float) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x:.4f}" if x < 0.1 else f"{x:.2f}" if x < 10 else f"{x:.1f}"


def _block_title(space: str, dataset: str) -> str:
    return f"{space} / {dataset}"


def wide_table(table: pd.DataFrame) -> pd.DataFrame:
    """Methods x (space / dataset) blocks, cells ``mean ± std (n=..)`` in percent, like the
    papers' tables; published rows are labelled with paper and table, unconfirmed values
    get ``[U]``. The last column is the measured methods' mean rank averaged over blocks."""
    blocks = list(dict.fromkeys(zip(table["space"], table["dataset"])))
    cols = [_block_title(s, d) for s, d in blocks]
    cells: dict[str, dict[str, str]] = {}
    avg_rank: dict[str, str] = {}
    for r in table.itertuples():
        col = _block_title(r.space, r.dataset)
        if r.kind == "measured":
            label = r.method
            cell = _mean_std(r) + " " + _counts_suffix(r)
        else:
            label = _pub_label(r)
            cell = _mean_std(r)
            if cell == "-" and not (isinstance(r.param_free_frac, float)
                                    and math.isnan(r.param_free_frac)):
                cell = f"param-free {r.param_free_frac:.3g}"
            if not r.confirmed:
                cell += " [U]"
        cells.setdefault(label, {})[col] = cell
    measured = table[table["kind"] == "measured"]
    for m, g in measured.groupby("method", sort=False):
        avg_rank[m] = fmt(float(g["mean_rank"].mean()), 2) if g["mean_rank"].notna().any() else "-"
    wide = pd.DataFrame.from_dict(cells, orient="index").reindex(columns=cols).fillna("")
    if avg_rank:
        wide["avg. rank"] = [avg_rank.get(i, "") for i in wide.index]
    wide.index.name = "method"
    return wide


def format_leaderboard(table: pd.DataFrame) -> str:
    """Terminal text: one block per (space, dataset), measured rows then published ones,
    followed by what the columns mean."""
    if len(table) == 0:
        return "(empty leaderboard)"
    meta = _meta(table)
    out = [f"Leaderboard - {describe_metric(meta['metric'])}; test error in % "
           f"(run files store fractions)."]
    header = ["method", "runs", "fin", "div", "unf", "n", "mean ± std", "median", "IQR", "min",
              f"{int(meta['ci'] * 100)}% CI", "rank", "h/search", "device", "param-free"]
    right = [False, True, True, True, True, True, True, True, True, True, True, True, True,
             False, True]
    show_params = bool(table["params_m"].notna().any())
    if show_params:
        header, right = header + ["params (M)"], right + [True]
    any_pub = False
    for (space, dataset), blk in table.groupby(["space", "dataset"], sort=False):
        rows = []
        for r in blk.itertuples():
            if r.kind == "measured":
                ci = ("-" if math.isnan(r.ci_low_pct)
                      else f"[{r.ci_low_pct:.2f}, {r.ci_high_pct:.2f}]")
                rows.append([r.method, str(r.n_runs), str(r.n_finished), str(r.n_diverged),
                             str(r.n_unfinished), str(r.n), _mean_std(r), fmt(r.median_pct),
                             fmt(r.iqr_pct), fmt(r.min_pct), ci, fmt(r.mean_rank),
                             _hours(r.search_hours), r.device, fmt(r.param_free_frac, 3)]
                            + ([fmt(r.params_m)] if show_params else []))
            else:
                any_pub = True
                rows.append([_pub_label(r) + ("" if r.confirmed else " [U]"), "", "", "", "",
                             "", _mean_std(r), "", "", "", "", "", _hours(r.search_hours),
                             r.device if isinstance(r.device, str) else "",
                             fmt(r.param_free_frac, 3)]
                            + ([fmt(r.params_m)] if show_params else []))
        out += ["", _block_title(space, dataset), text_table(header, rows, right, indent="  ")]
    out += ["", _legend(meta, any_pub)]
    warn = table[(table["kind"] == "measured") & ((table["n_diverged"] > 0)
                                                  | (table["n_unfinished"] > 0))]
    for r in warn.itertuples():
        out.append(f"note: {r.method} on {r.space}/{r.dataset}: {int(r.n_diverged)} diverged, "
                   f"{int(r.n_unfinished)} unfinished of {int(r.n_runs)} runs")
    return "\n".join(out)


def _legend(meta: dict[str, Any], published: bool) -> str:
    kind, e = parse_metric(meta["metric"])
    lines = [
        "runs/fin/div/unf: all runs / finished / diverged / unfinished (running, failed or "
        "interrupted); n: runs that give a value"
        + {"anytime": f" (completed {e} epochs)", "evaluated": " (finished evaluations)"
           }.get(kind, " (finished)") + ".",
        "mean ± std: sample std (ddof 1); IQR: q75 - q25; "
        f"{int(meta['ci'] * 100)}% CI: BCa bootstrap of the mean (scipy), {meta['n_boot']:,} "
        f"resamples, RNG seed {meta['seed']}.",
        "rank: mean rank within the (space, dataset) block over seeds every method has (1 = "
        "lowest error); h/search: wall time of one finished search in hours on the device "
        "shown (CPU hours are not GPU-hours); param-free: parameter-free share of the normal "
        "cell.",
    ]
    if published and kind == "evaluated":
        lines.append("published rows: test errors of architectures retrained under each "
                     "paper's protocol (see the setting column of baselines/*.csv); compare "
                     "values only where the evaluation settings match. [U] = unconfirmed "
                     "value; published h/search = GPU-days x 24.")
    elif published:
        lines.append("published rows: test errors of architectures retrained from scratch "
                     "(paper protocol), not the supernet-oracle anytime error measured here: "
                     "compare orderings, not values. [U] = unconfirmed value; published "
                     "h/search = GPU-days x 24.")
    return "\n".join(lines)


def leaderboard_markdown(table: pd.DataFrame) -> str:
    """Markdown: the methods x blocks table (lowest measured mean in bold) and the per-row
    details, with the metric, the unit and what each column means."""
    meta = _meta(table)
    wide = wide_table(table)
    measured = table[table["kind"] == "measured"]
    best: dict[str, str] = {}
    for (s, d), g in measured.groupby(["space", "dataset"], sort=False):
        if g["mean_pct"].notna().any():
            best[_block_title(s, d)] = g.loc[g["mean_pct"].idxmin(), "method"]
    header = ["method"] + list(wide.columns)
    rows = []
    for label, r in wide.iterrows():
        cells = [str(label)]
        for col in wide.columns:
            v = r[col]
            cells.append(f"**{v}**" if best.get(col) == label and v else v)
        rows.append(cells)
    parts = [f"Test error (%) - {describe_metric(meta['metric'])}; mean ± std over seeds "
             f"(n = runs giving a value; div. = diverged, unf. = unfinished). Lowest measured "
             f"mean in bold.", "",
             markdown_table(header, rows, [False] + [True] * len(wide.columns)), ""]
    show_params = bool(measured["params_m"].notna().any())
    drows = []
    for r in measured.itertuples():
        ci = "-" if math.isnan(r.ci_low_pct) else f"[{r.ci_low_pct:.2f}, {r.ci_high_pct:.2f}]"
        drows.append([_block_title(r.space, r.dataset), r.method, str(r.epochs),
                      f"{r.n_finished}/{r.n_diverged}/{r.n_unfinished}", str(r.n),
                      _mean_std(r), fmt(r.median_pct), fmt(r.iqr_pct), fmt(r.min_pct), ci,
                      fmt(r.mean_rank), _hours(r.search_hours), r.device,
                      fmt(r.param_free_frac, 3)] + ([fmt(r.params_m)] if show_params else []))
    dheader = ["space / dataset", "method", "epochs", "fin/div/unf", "n", "mean ± std",
               "median", "IQR", "min", f"{int(meta['ci'] * 100)}% CI", "mean rank",
               "h/search", "device", "param-free"]
    dright = [False, False, True, False, True, True, True, True, True, True, True, True, False,
              True]
    if show_params:
        dheader, dright = dheader + ["params (M)"], dright + [True]
    parts += [markdown_table(dheader, drows, dright), ""]
    legend = _legend(meta, bool((table["kind"] == "published").any()))
    parts += ["- " + line for line in legend.splitlines()]
    return "\n".join(parts) + "\n"


def write_leaderboard(table: pd.DataFrame, out: str | Path) -> list[Path]:
    """``out`` (long CSV), ``<stem>-wide.csv`` and ``<stem>.md`` beside it; returns the paths."""
    out = Path(out)
    if out.suffix.lower() != ".csv":
        out = out.with_suffix(".csv") if out.suffix else out.with_name(out.name + ".csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    wide_path = out.with_name(out.stem + "-wide.csv")
    md_path = out.with_suffix(".md")
    table.to_csv(out, index=False, float_format="%.6g")
    wide_table(table).to_csv(wide_path)
    md_path.write_text(leaderboard_markdown(table))
    return [out, wide_path, md_path]
