"""``nasbench-eval leaderboard | compare | plot | fidelity``: thin over :mod:`nasbench_eval.analysis`.

Kept light at import time (pandas, scipy and matplotlib load inside the commands), so that
``nasbench-eval --help`` stays fast.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import click

from ..errors import NasbenchEvalError
from .common import CONTEXT, Choice, renamed_option

_METRIC_HELP = ("final (last epoch's anytime test error, finished runs), best (lowest over the "
                "epochs, finished runs), anytime-at-E (after E search epochs, every run that "
                "got there) or evaluated (the final architecture retrained from scratch by "
                "`nasbench-eval evaluate`, finished evaluations).")


def _results_arg(fn: Callable) -> Callable:
    # click lists options in the reverse order of decoration: --metric comes first
    fn = click.option("--quiet", is_flag=True, help="No progress bar while reading runs.")(fn)
    fn = click.option("--skip-bad", is_flag=True,
                      help="Skip malformed run directories (listed on stderr) instead of "
                           "stopping at the first.")(fn)
    fn = click.option("--metric", default="final", show_default=True, help=_METRIC_HELP)(fn)
    fn = click.argument("results", nargs=-1, required=True,
                        type=click.Path(exists=True, dir_okay=True, file_okay=True))(fn)
    return fn


def _load(results: tuple[str, ...], skip_bad: bool, quiet: bool):
    from ..analysis import load_runs

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return load_runs(results, on_error="warn" if skip_bad else "raise",
                             progress=False if quiet else None)
        finally:  # the skipped directories are named even when none is left
            for w in caught:
                click.echo(f"warning: {w.message}", err=True)


def _run(body: Callable[[], Any]) -> Any:
    """Turn the analysis' errors and warnings into terminal lines (no traceback)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = body()
        for w in caught:
            if issubclass(w.category, UserWarning):
                click.echo(f"warning: {w.message}", err=True)
        return out
    except (NasbenchEvalError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@click.command(name="leaderboard", context_settings=CONTEXT)
@_results_arg
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the long table to this CSV, plus <stem>-wide.csv (methods x spaces) "
                   "and <stem>.md (Markdown) beside it.")
@click.option("--with-baselines", is_flag=True,
              help="Add the published numbers (baselines/*.csv) beside the measured rows, "
                   "marked as published.")
@click.option("--baseline-blocks", type=Choice(["matching", "space", "all"]),
              default="matching", show_default=True,
              help="With --with-baselines: only the (space, dataset) blocks measured here, "
                   "every published dataset of the spaces measured here, or every published "
                   "block.")
@click.option("--baselines-dir", type=click.Path(exists=True, file_okay=False), default=None,
              help="Directory of baseline CSVs (default: the bundled baselines/).")
@click.option("--ci", default=0.95, show_default=True, type=float,
              help="Level of the bootstrap confidence interval of the mean.")
@click.option("--n-boot", default=10_000, show_default=True, type=int,
              help="Bootstrap resamples.")
@click.option("--boot-seed", default=0, show_default=True, type=int,
              help="RNG seed of the bootstrap (fixed, so tables are reproducible).")
def leaderboard_cmd(results: tuple[str, ...], metric: str, skip_bad: bool, quiet: bool,
                    out: str | None, with_baselines: bool, baseline_blocks: str,
                    baselines_dir: str | None, ci: float, n_boot: int, boot_seed: int) -> None:
    """Leaderboard of the runs under RESULTS: one row per (space, dataset, method).

    n seeds (finished / diverged / unfinished), mean, std, median, IQR, min, bootstrap CI of
    the mean test error (in %), search hours per run and device, parameter-free fraction and
    mean rank within each (space, dataset) block.
    """
    def body() -> None:
        from ..analysis import format_leaderboard, leaderboard, write_leaderboard

        runs = _load(results, skip_bad, quiet)
        baselines: Any = (baselines_dir or True) if with_baselines else None
        table = leaderboard(runs, metric, ci=ci, n_boot=n_boot, seed=boot_seed,
                            baselines=baselines, baseline_blocks=baseline_blocks)
        if with_baselines and not (table["kind"] == "published").any():
            click.echo("note: no published numbers for these (space, dataset) blocks; "
                       "--baseline-blocks all shows every published block", err=True)
        click.echo(format_leaderboard(table))
        if out:
            for p in write_leaderboard(table, out):
                click.echo(f"wrote {p}", err=True)

    _run(body)


@click.command(name="compare", context_settings=CONTEXT)
@_results_arg
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="Significance level (after Holm correction for the pairwise tests).")
@click.option("--paired", type=Choice(["auto", "seed", "none"]), default="auto",
              show_default=True,
              help="auto: Wilcoxon signed-rank when two methods have the same seeds, else "
                   "Mann-Whitney U; seed: always pair on common seeds; none: always "
                   "Mann-Whitney U.")
@click.option("--blocks", type=Choice(["auto", "problem", "seed"]), default="auto",
              show_default=True,
              help="Friedman blocks: (space, dataset) problems (mean over seeds), or "
                   "(space, dataset, seed); auto = problems when 5 or more are complete.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the pairwise tests to this CSV, plus <stem>-friedman.csv and "
                   "<stem>-nemenyi.csv beside it.")
def compare_cmd(results: tuple[str, ...], metric: str, skip_bad: bool, quiet: bool,
                alpha: float, paired: str, blocks: str, out: str | None) -> None:
    """Statistical comparison of the methods in RESULTS.

    Per (space, dataset): pairwise Wilcoxon / Mann-Whitney tests with Holm correction and
    rank-biserial effect sizes. Across blocks: Friedman test, Nemenyi post-hoc and the
    critical difference. Says in words which differences are significant.
    """
    def body() -> None:
        from ..analysis import compare, format_compare

        runs = _load(results, skip_bad, quiet)
        res = compare(runs, metric, alpha=alpha, paired=paired, blocks=blocks)
        click.echo(format_compare(res))
        if out:
            for p in res.write(out):
                click.echo(f"wrote {p}", err=True)

    _run(body)


@click.command(name="plot", context_settings=CONTEXT)
@renamed_option("--out-dir", "--out", "out")
@_results_arg
@click.option("--kind", "kinds", multiple=True, default=("all",), show_default=True,
              type=Choice(["all", "anytime", "hessian", "seeds", "cd", "param-free"]),
              help="Figure(s) to draw (repeatable). anytime: anytime test error vs epoch; "
                   "hessian: dominant Hessian eigenvalue vs epoch; seeds: per-seed final "
                   "errors with boxes; cd: critical-difference diagram; param-free: "
                   "parameter-free op fraction.")
@click.option("--out", default="plots", show_default=True, type=click.Path(file_okay=False),
              help="Directory where <kind>.png and <kind>.pdf go.")
@click.option("--alpha", default=0.05, show_default=True, type=float,
              help="Significance level of the critical-difference diagram.")
@click.option("--blocks", type=Choice(["auto", "problem", "seed"]), default="auto",
              show_default=True, help="Friedman blocks of the critical-difference diagram.")
@click.option("--format", "formats", default="png,pdf", show_default=True,
              help="Comma-separated file formats.")
def plot_cmd(results: tuple[str, ...], metric: str, skip_bad: bool, quiet: bool,
             kinds: tuple[str, ...], out: str, alpha: float, blocks: str,
             formats: str) -> None:
    """Figures (PNG + PDF) from the runs under RESULTS, errors in %, seeds counted in titles."""
    def body() -> None:
        import matplotlib

        matplotlib.use("Agg")
        from ..analysis import PLOT_KINDS, make_plots

        runs = _load(results, skip_bad, quiet)
        explicit = "all" not in kinds
        chosen = list(kinds) if explicit else list(PLOT_KINDS)
        written, skipped = make_plots(runs, chosen, out, metric=metric, alpha=alpha,
                                      blocks=blocks, strict=explicit,
                                      formats=[f.strip() for f in formats.split(",") if f.strip()],
                                      progress=False if quiet else None)
        for p in written:
            click.echo(f"wrote {p}")
        for s in skipped:
            click.echo(f"skipped {s}", err=True)

    _run(body)


@click.command(name="fidelity", context_settings=CONTEXT)
@renamed_option("--out-dir", "--out", "out")
@click.argument("results", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=True, file_okay=True))
@click.option("--out", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Directory where fidelity.md, fidelity.csv, fidelity-tests.csv and "
                   "fidelity-runs.csv go.")
@click.option("--quiet", is_flag=True, help="Only the file names.")
def fidelity_cmd(results: tuple[str, ...], out: str, quiet: bool) -> None:
    """Does a study behave as the papers say? Per (space, method): parameter-free share of
    the normal cell (first -> final epoch) and Hessian eigenvalue growth, mean +- std over
    seeds, beside the published direction; DARTS vs SDARTS-ADV Mann-Whitney p-values,
    Holm-corrected."""
    def body() -> None:
        from ..analysis.fidelity import write_fidelity

        files = write_fidelity(results, out)
        if not quiet:
            click.echo(files[-1].read_text())
        for f in files:
            click.echo(f"wrote {f}")

    _run(body)


COMMANDS = (leaderboard_cmd, compare_cmd, plot_cmd, fidelity_cmd)
