"""Does a study reproduce the papers' behaviour? The table of the README's fidelity section.

Per (space, method), over seeds: the parameter-free share of the derived normal cell at the
end of the search (and its change from the first epoch), and the growth of the dominant
Hessian eigenvalue of L_val w.r.t. alpha (last / first probe), each as mean +- std, beside the
direction the papers report. Then DARTS vs SDARTS-ADV per space and metric: a two-sided
Mann-Whitney U test over the seeds (the runs of two methods share a seed's data order and
initial weights, but the parameter-free shares are heavily tied multiples of 1/8, which
suits the rank-sum test better than signed ranks), its p-value from the permutation
distribution (exact enumeration for up to 10 + 10 runs; the normal approximation is poor
with so many ties at these sizes), Holm-corrected over all the tests.

The growth ratio is only defined when the first eigenvalue is positive; lambda_max with the
decay term (runs since issue 16) is, but run directories from before issue 16 (no
``hessian_eig_wd`` column) hold the eigenvalue of largest magnitude, which can be negative;
such runs count in ``n`` but not in the growth columns. Diverged runs are
counted (``diverged``) and left out of the means.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as sps

from .runs import AnalysisError, _as_runs, load_metrics
from .stats import holm

# What RobustDARTS (Zela et al. 2020) and SDARTS (Chen & Hsieh 2020) report on S1-S4; see
# shared/reference/darts-family.md (SDARTS Table 5 itself was not retrieved: the counts are
# those of SDARTS's released CIFAR-10 genotypes).
PUBLISHED = {
    "darts": ("rises (collapse: 4-8 of 8 ops parameter-free)", "grows steadily"),
    "sdarts-rs": ("stays low (released S2 3/8, S3 1/8)", "stays low, below DARTS"),
    "sdarts-adv": ("stays low (released S2 1/8, S3 1/8)", "stays lowest"),
}
METRICS = {"param_free_final": "final parameter-free share (normal cell)",
           "eig_growth": "Hessian eigenvalue growth (last / first)"}


def per_run(paths_or_runs: Iterable[str | Path] | pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: final and first parameter-free share, first and last
    eigenvalue and their ratio."""
    runs = _as_runs(paths_or_runs)
    mixed = runs.groupby(["dataset", "space", "method"])["setting"].nunique()
    if (mixed > 1).any():
        where = ", ".join("/".join(map(str, k)) for k in mixed[mixed > 1].index)
        raise AnalysisError(f"runs of different settings share a (dataset, space, method) "
                            f"cell ({where}); give the runs of one study")
    runs = runs[runs["status"] == "finished"]
    if runs.empty:
        raise AnalysisError("no finished runs to tabulate")
    m = load_metrics(runs)
    rows = []
    for run_id, g in m.groupby("run_id", sort=False):
        g = g.sort_values("epoch")
        eig = g["hessian_eig"].dropna() if "hessian_eig" in g else pd.Series(dtype=float)
        pf = g["param_free_normal"].dropna()
        first, last = (float(eig.iloc[0]), float(eig.iloc[-1])) if len(eig) else (math.nan,) * 2
        rows.append({"run_id": run_id, "method": g["method"].iloc[0], "space": g["space"].iloc[0],
                     "dataset": g["dataset"].iloc[0],
                     "seed": int(g["seed"].iloc[0]),
                     "param_free_first": float(pf.iloc[0]) if len(pf) else math.nan,
                     "param_free_final": float(pf.iloc[-1]) if len(pf) else math.nan,
                     "eig_first": first, "eig_last": last,
                     "eig_growth": last / first if first and first > 0 else math.nan})
    return pd.DataFrame(rows)


def fidelity_table(paths_or_runs: Iterable[str | Path] | pd.DataFrame,
                   test_pair: tuple[str, str] = ("darts", "sdarts-adv")
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary per space and method, tests of ``test_pair`` per space and metric)."""
    runs = _as_runs(paths_or_runs)
    r = per_run(runs)
    diverged = runs[runs["status"] == "diverged"].groupby(["dataset", "space", "method"]).size()
    summary = []
    for (dataset, space, method), g in r.groupby(["dataset", "space", "method"], sort=True):
        pub = PUBLISHED.get(method, ("-", "-"))
        row = {"dataset": dataset, "space": space, "method": method, "n": len(g),
               "diverged": int(diverged.get((dataset, space, method), 0)),
               "n_growth": int(g["eig_growth"].notna().sum())}
        for col in ("param_free_first", "param_free_final", "eig_first", "eig_last", "eig_growth"):
            v = g[col].dropna()
            row[f"{col}_mean"] = float(v.mean()) if len(v) else math.nan
            row[f"{col}_std"] = float(v.std(ddof=1)) if len(v) > 1 else math.nan
        row["published_param_free"], row["published_eig"] = pub
        summary.append(row)
    summary = pd.DataFrame(summary)
    tests = []
    a_name, b_name = test_pair
    for (dataset, space), g in r.groupby(["dataset", "space"], sort=True):
        a, b = g[g["method"] == a_name], g[g["method"] == b_name]
        for metric in METRICS:
            x, y = a[metric].dropna().to_numpy(), b[metric].dropna().to_numpy()
            if len(x) < 2 or len(y) < 2:
                p = math.nan
            elif np.unique(np.concatenate([x, y])).size == 1:
                p = 1.0  # every value equal: no evidence of a difference
            else:
                exact = math.comb(len(x) + len(y), len(x)) <= 200_000
                perm = sps.PermutationMethod(n_resamples=np.inf if exact else 100_000, rng=0)
                p = float(sps.mannwhitneyu(x, y, alternative="two-sided", method=perm).pvalue)
            tests.append({"dataset": dataset, "space": space, "metric": metric, "a": a_name, "b": b_name,
                          "n_a": len(x), "n_b": len(y),
                          "mean_a": float(np.mean(x)) if len(x) else math.nan,
                          "mean_b": float(np.mean(y)) if len(y) else math.nan,
                          "p": p})
    tests = pd.DataFrame(tests)
    if not tests.empty:
        tests["p_holm"] = holm(tests["p"].to_numpy())
    return summary, tests


def _pm(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def format_markdown(summary: pd.DataFrame, tests: pd.DataFrame) -> str:
    """The README table: one row per (space, method), the DARTS vs SDARTS-ADV p-values in the
    SDARTS-ADV rows."""
    p_of = ({(t.dataset, t.space, t.metric): t.p_holm for t in tests.itertuples()}
            if len(tests) else {})
    pair_a, pair_b = (tests["a"].iloc[0], tests["b"].iloc[0]) if len(tests) else ("-", None)
    lines = ["| space | method | n | parameter-free share, first -> final epoch | published "
             "| Hessian eigenvalue, first -> last probe | growth (last / first) | published "
             f"| p ({pair_a} vs {pair_b}, Holm): share / growth |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summary.itertuples():
        p = "-"
        if s.method == pair_b:
            ps = [p_of.get((s.dataset, s.space, m), math.nan) for m in METRICS]
            p = " / ".join("-" if math.isnan(v) else f"{v:.3g}" for v in ps)
        n = f"{s.n}" + (f" (+{s.diverged} diverged)" if s.diverged else "")
        growth = _pm(s.eig_growth_mean, s.eig_growth_std) + (
            f" (n={s.n_growth})" if s.n_growth != s.n else "")
        lines.append(
            f"| {s.space} | {s.method} | {n} | "
            f"{_pm(s.param_free_first_mean, s.param_free_first_std)} -> "
            f"{_pm(s.param_free_final_mean, s.param_free_final_std)} | {s.published_param_free} | "
            f"{_pm(s.eig_first_mean, s.eig_first_std, 3)} -> {_pm(s.eig_last_mean, s.eig_last_std, 3)} | "
            f"{growth} | {s.published_eig} | {p} |")
    return "\n".join(lines) + "\n"


def write_fidelity(paths: Iterable[str | Path], out_dir: str | Path) -> list[Path]:
    """fidelity-runs.csv, fidelity.csv, fidelity-tests.csv and fidelity.md in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = _as_runs(paths)
    per = per_run(runs)
    summary, tests = fidelity_table(runs)
    files = [out / "fidelity-runs.csv", out / "fidelity.csv", out / "fidelity-tests.csv",
             out / "fidelity.md"]
    per.to_csv(files[0], index=False)
    summary.to_csv(files[1], index=False)
    tests.to_csv(files[2], index=False)
    files[3].write_text(format_markdown(summary, tests))
    return files
