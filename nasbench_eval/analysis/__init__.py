"""Analysis of run directories: leaderboards, statistics across seeds, plots, published baselines.

Reads ``results/`` only (never a GPU, never a live run), so it works on results copied from a
cluster. The notebook API mirrors the CLI (``nasbench-eval leaderboard | compare | plot``)::

    from nasbench_eval.analysis import load_runs, leaderboard, format_leaderboard, compare
    runs = load_runs(["results/"])
    table = leaderboard(runs, metric="final", baselines=True)
    print(format_leaderboard(table))
    print(format_compare(compare(runs)))

Errors are fractions in [0, 1] in ``load_runs``/``load_metrics`` (as in the run files) and
percent in the leaderboard, the statistics and the plots.
"""
from __future__ import annotations

from .baselines import baselines_dir, load_baselines, published_rows
from .leaderboard import (bootstrap_ci, format_leaderboard, leaderboard, leaderboard_markdown,
                          wide_table, write_leaderboard)
from .plots import (PLOT_KINDS, make_plots, plot_anytime, plot_cd, plot_hessian,
                    plot_param_free, plot_seeds, save_figure)
from .runs import (AnalysisError, describe_metric, find_run_dirs, load_metrics, load_runs,
                   metric_values, parse_metric, read_run)
from .stats import (Comparison, block_matrix, compare, critical_difference, format_compare,
                    friedman_nemenyi, holm, pairwise_tests)

__all__ = [
    "PLOT_KINDS", "AnalysisError", "Comparison", "baselines_dir", "block_matrix",
    "bootstrap_ci", "compare", "critical_difference", "describe_metric", "find_run_dirs",
    "format_compare", "format_leaderboard", "friedman_nemenyi", "holm", "leaderboard",
    "leaderboard_markdown", "load_baselines", "load_metrics", "load_runs", "make_plots",
    "metric_values", "pairwise_tests", "parse_metric", "plot_anytime", "plot_cd",
    "plot_hessian", "plot_param_free", "plot_seeds", "published_rows", "read_run",
    "save_figure", "wide_table", "write_leaderboard",
]
