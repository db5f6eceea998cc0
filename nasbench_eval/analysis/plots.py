"""Figures for papers and notebooks (seaborn on matplotlib's object API; PNG + PDF).

Every function returns a matplotlib ``Figure`` built without pyplot, so it neither needs a
display nor changes the notebook's backend; :func:`save_figure` writes ``.png`` and ``.pdf``.
Errors are plotted in percent. Each figure says how many seeds it averages in its title or
legend.
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from .runs import (UNFINISHED, AnalysisError, _as_runs, describe_metric, load_metrics,
                   metric_values, mixed_settings)

PLOT_KINDS = ("anytime", "hessian", "seeds", "cd", "param-free")
PANEL_W, PANEL_H = 3.4, 2.7  # inches: two panels fit a two-column paper's text width


@contextmanager
def _style():
    import matplotlib
    import seaborn as sns

    rc = {"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "legend.fontsize": 8,
          "xtick.labelsize": 8, "ytick.labelsize": 8, "figure.dpi": 100, "savefig.dpi": 200,
          "pdf.fonttype": 42}
    with matplotlib.rc_context(), sns.axes_style("whitegrid"):
        matplotlib.rcParams.update(rc)
        yield


def _figure(nrows: int, ncols: int, extra_h: float = 0.5):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PANEL_W * ncols, PANEL_H * nrows + extra_h), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def save_figure(fig, stem: str | Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (or the given formats); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in formats:
        p = stem.with_name(stem.name + "." + f)
        fig.savefig(p, bbox_inches="tight")
        paths.append(p)
    return paths


def _suptitle(fig, text: str, ncols: int) -> None:
    import textwrap

    fig.suptitle(textwrap.fill(text, width=max(50, int(ncols * PANEL_W * 14))))


def _integer_x(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _panels(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    return sorted(df["dataset"].unique()), sorted(df["space"].unique())


def _count(runs: int, seeds: int) -> str:
    """``n=3`` for three runs of three seeds; ``2 runs, 1 seed`` where runs of one method share
    a seed (different settings): they are not seeds of one experiment."""
    return f"n={seeds}" if runs == seeds else f"{runs} runs, {seeds} seed{'s' * (seeds != 1)}"


def _seed_words(counts: Iterable[int | tuple[int, int]]) -> str:
    """The title's count; ``counts``: seeds per method, or (runs, seeds) per method."""
    pairs = [c if isinstance(c, tuple) else (int(c), int(c)) for c in counts]
    if not pairs:
        return "no runs"
    if any(r != s for r, s in pairs):
        lo, hi = min(s for _, s in pairs), max(s for _, s in pairs)
        seeds = f"{lo} seed{'s' * (lo != 1)}" if lo == hi else f"{lo}-{hi} seeds"
        return (f"up to {max(r for r, _ in pairs)} runs of {seeds} per method: runs of "
                f"different settings share seeds (see legend)")
    c = sorted(set(s for _, s in pairs))
    if len(c) == 1:
        return f"n = {c[0]} seed{'s' if c[0] != 1 else ''} per method"
    return f"n = {c[0]}-{c[-1]} seeds per method (see legend)"


def _palette(methods: Sequence[str]) -> dict[str, tuple]:
    import seaborn as sns

    return dict(zip(methods, sns.color_palette("colorblind", len(methods))))


def _curves(metrics: pd.DataFrame, column: str, ylabel: str, title: str, scale: float = 1.0):
    import seaborn as sns

    cols = ["dataset", "space", "method", "run_id", "epochs_completed", column]
    df = metrics[cols + (["seed"] if "seed" in metrics.columns else [])].dropna(subset=cols)
    if df.empty:
        raise AnalysisError(f"no run has values in column '{column}'")
    df = df.assign(y=df[column].astype(float) * scale)
    datasets, spaces = _panels(df)
    methods = sorted(df["method"].unique())
    pal = _palette(methods)
    all_counts = []
    with _style():
        fig, axes = _figure(len(datasets), len(spaces))
        for i, d in enumerate(datasets):
            for j, s in enumerate(spaces):
                ax = axes[i][j]
                p = df[(df["dataset"] == d) & (df["space"] == s)]
                if p.empty:
                    ax.set_visible(False)
                    continue
                for m, g in p.groupby("method", sort=True):
                    n = g["run_id"].nunique()
                    seeds = g["seed"].nunique() if "seed" in g.columns else n
                    all_counts.append((n, seeds))
                    sns.lineplot(data=g, x="epochs_completed", y="y", estimator="mean",
                                 errorbar="sd", ax=ax, color=pal[m],
                                 label=f"{m} ({_count(n, seeds)})",
                                 marker="o" if g["epochs_completed"].nunique() <= 12 else None,
                                 markersize=3)
                ax.set_title(f"{s} / {d}")
                ax.set_xlabel("search epoch")
                ax.set_ylabel(ylabel)
                ax.legend(title=None, frameon=True)
                _integer_x(ax)
        _suptitle(fig, f"{title} - mean ± std over seeds, {_seed_words(all_counts)}",
                  len(spaces))
    return fig


def plot_anytime(metrics: pd.DataFrame):
    """Anytime test error vs search epoch: mean ± std band per method, a panel per space (rows:
    datasets), like SDARTS Fig. 3/4. ``metrics``: a :func:`load_metrics` frame."""
    return _curves(metrics, "anytime_test_error", "anytime test error (%)",
                   "Anytime test error of the derived architecture", scale=100.0)


def plot_hessian(metrics: pd.DataFrame):
    """lambda_max of the Hessian of L_val w.r.t. alpha vs search epoch (before issue 16 the
    column held the largest-magnitude eigenvalue; see the README's Hessian tracking)."""
    if "hessian_eig" not in metrics.columns or metrics["hessian_eig"].notna().sum() == 0:
        raise AnalysisError("no run has Hessian eigenvalues (column hessian_eig); run the "
                            "searches with --hessian-every k")
    return _curves(metrics, "hessian_eig",
                   r"$\lambda_{max}$ of $\nabla^2_\alpha \mathcal{L}_{val}$",
                   "Hessian largest eigenvalue")


def _per_run(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    vals = metric_values(runs, metric)
    return runs.assign(error_pct=vals["error"] * 100, param_free=vals["param_free"])


def _method_labels(df: pd.DataFrame, value: str) -> dict[str, str]:
    labels = {}
    for m, g in df.groupby("method"):
        n = int(g[value].notna().sum())
        seeds = int(g.loc[g[value].notna(), "seed"].nunique()) if "seed" in g.columns else n
        extra = []
        if (g["status"] == "diverged").any():
            extra.append(f"{int((g['status'] == 'diverged').sum())} div.")
        unf = int(g["status"].isin(UNFINISHED).sum())
        if unf:
            extra.append(f"{unf} unf.")
        labels[m] = f"{m}\n{_count(n, seeds)}" + ("\n" + ", ".join(extra) if extra else "")
    return labels


def _box_panels(runs: pd.DataFrame, value: str, ylabel: str, title: str, bar: bool = False,
                ylim: tuple[float, float] | None = None):
    import seaborn as sns

    if runs[value].notna().sum() == 0:
        raise AnalysisError(f"no run gives a value for '{value}' (no finished runs?)")
    datasets, spaces = _panels(runs)
    methods = sorted(runs["method"].unique())
    pal = _palette(methods)
    counts = []
    with _style():
        fig, axes = _figure(len(datasets), len(spaces))
        for i, d in enumerate(datasets):
            for j, s in enumerate(spaces):
                ax = axes[i][j]
                p = runs[(runs["dataset"] == d) & (runs["space"] == s)]
                if p.empty:
                    ax.set_visible(False)
                    continue
                order = sorted(p["method"].unique())
                labels = _method_labels(p, value)
                for m in order:
                    has = p[(p["method"] == m) & p[value].notna()]
                    counts.append((len(has), int(has["seed"].nunique()) if "seed" in has
                                   else len(has)))
                q = p[p[value].notna()]
                kw = dict(data=q, x="method", y=value, order=order, ax=ax)
                if bar:
                    sns.barplot(**kw, hue="method", hue_order=order, palette=pal,
                                errorbar="sd", alpha=0.6, legend=False)
                else:
                    sns.boxplot(**kw, hue="method", hue_order=order, palette=pal, width=0.55,
                                showfliers=False, boxprops={"alpha": 0.45}, legend=False)
                sns.stripplot(**kw, color="black", size=3.5, jitter=0.15, alpha=0.85)
                ax.set_xticks(range(len(order)), [labels[m] for m in order])
                ax.set_title(f"{s} / {d}")
                ax.set_xlabel("")
                ax.set_ylabel(ylabel)
                if ylim:
                    ax.set_ylim(*ylim)
        _suptitle(fig, f"{title}, {_seed_words(counts)}", len(spaces))
    return fig


def plot_seeds(runs: pd.DataFrame, metric: str = "final"):
    """Seed sweep: every seed's test error as a point over a box per method, panel per space."""
    df = _per_run(runs, metric)
    return _box_panels(df, "error_pct", "test error (%)",
                       f"Seed sweep: {describe_metric(metric)}; one point per seed")


def plot_param_free(runs: pd.DataFrame, metric: str = "final"):
    """Parameter-free share of the normal cell per method and space (mean ± std bar, points)."""
    df = _per_run(runs, metric)
    return _box_panels(df, "param_free", "parameter-free ops in normal cell (fraction)",
                       "Parameter-free operations (skip, pool, none, noise); bar = mean ± std",
                       bar=True, ylim=(0, 1.05))


def plot_cd(runs: pd.DataFrame, metric: str = "final", *, alpha: float = 0.05,
            blocks: str = "auto"):
    """Critical-difference diagram: mean ranks across blocks, Nemenyi cliques (scikit-posthocs
    ``critical_difference_diagram``) and the CD bar."""
    import scikit_posthocs as sp

    from .stats import compare

    res = compare(runs, metric, alpha=alpha, blocks=blocks)
    if not res.friedman_done:
        raise AnalysisError("no critical-difference diagram: " + "; ".join(res.notes))
    with _style():
        fig, axes = _figure(1, 1, extra_h=0)
        fig.set_size_inches(max(PANEL_W * 1.8, 1.2 * len(res.methods) + 2.5),
                            1.9 + 0.25 * len(res.methods))
        ax = axes[0][0]
        _cd_diagram(sp, res, alpha, ax)
        verdict = "significant" if res.friedman_p < alpha else "not significant"
        ax.set_title(f"Mean rank (1 = lowest error) over N = {res.n_blocks} "
                     f"{res.block_unit}\nFriedman p = {res.friedman_p:.3g} ({verdict}), "
                     f"Nemenyi alpha = {alpha:g}, CD = {res.cd:.2f}; bars join methods not "
                     f"significantly different", fontsize=8, pad=22)
    return fig


def _cd_diagram(sp, res, alpha: float, ax) -> None:
    """scikit-posthocs' diagram; versions before the ``alpha``/``cd`` arguments (2025/2026)
    join methods at p >= 0.05, so there the p-values are rescaled to put alpha at 0.05."""
    import inspect

    params = inspect.signature(sp.critical_difference_diagram).parameters
    kw: dict = {}
    sig = res.nemenyi
    if "alpha" in params:
        kw["alpha"] = alpha
    elif alpha != 0.05:
        sig = (sig * (0.05 / alpha)).clip(upper=1.0)
    if "cd" in params:
        kw["cd"] = res.cd
    sp.critical_difference_diagram(res.mean_ranks, sig, ax=ax, **kw)


def make_plots(paths_or_runs, kinds: Iterable[str] = PLOT_KINDS, out_dir: str | Path = "plots",
               *, metric: str = "final", alpha: float = 0.05, blocks: str = "auto",
               formats: Sequence[str] = ("png", "pdf"), strict: bool = True,
               progress: bool | None = None) -> tuple[list[Path], list[str]]:
    """Draw the requested kinds into ``out_dir`` as ``<kind>.png`` / ``.pdf``.

    Returns (written paths, skipped messages). ``strict``: a kind without data (e.g. no
    Hessian values) raises; otherwise it is skipped with a message.
    """
    kinds = list(dict.fromkeys(kinds))
    for k in kinds:
        if k not in PLOT_KINDS:
            raise AnalysisError(f"unknown plot kind '{k}'; choose from {', '.join(PLOT_KINDS)}")
    runs = _as_runs(paths_or_runs, progress=progress)
    mixed = mixed_settings(runs)
    if mixed:
        warnings.warn("plotting runs of different settings together (epochs, layers, method "
                      "options, ...); they are counted as runs, not seeds: " + ", ".join(mixed),
                      stacklevel=2)
    metrics = None
    written: list[Path] = []
    skipped: list[str] = []
    for k in kinds:
        try:
            if k in ("anytime", "hessian"):
                if metrics is None:
                    metrics = load_metrics(runs, progress=progress)
                fig = plot_anytime(metrics) if k == "anytime" else plot_hessian(metrics)
            elif k == "seeds":
                fig = plot_seeds(runs, metric)
            elif k == "param-free":
                fig = plot_param_free(runs, metric)
            else:
                fig = plot_cd(runs, metric, alpha=alpha, blocks=blocks)
        except AnalysisError as exc:
            if strict:
                raise
            skipped.append(f"{k}: {exc}")
            continue
        written += save_figure(fig, Path(out_dir) / k.replace("-", "_"), formats)
    return written, skipped
