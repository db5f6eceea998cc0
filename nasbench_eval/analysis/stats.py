"""Statistics across seeds: pairwise tests per (space, dataset), Friedman + Nemenyi across blocks.

Pairwise: Wilcoxon signed-rank (scipy) when the two methods' runs pair up by seed, else
Mann-Whitney U (scipy); Holm's step-down correction over the pairs of one (space, dataset)
block; effect size = rank-biserial correlation, positive when the first method has the lower
error. Across blocks: Friedman (scipy) and the Nemenyi post-hoc (scikit-posthocs), with
Demsar's critical difference CD = q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha the studentized
range quantile (scipy) divided by sqrt(2).
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as ss

from ._text import fmt, text_table
from .runs import AnalysisError, describe_metric, metric_values, parse_metric

PAIRWISE_COLUMNS = ["space", "dataset", "method_a", "method_b", "test", "n_a", "n_b", "n_pairs",
                    "mean_a_pct", "mean_b_pct", "diff_pct", "statistic", "p", "p_holm",
                    "significant", "effect_rank_biserial", "better", "min_attainable_p", "note"]


def holm(pvalues: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (NaN entries stay NaN and are not counted)."""
    p = np.asarray(pvalues, dtype=float)
    adj = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    running = 0.0
    for i, j in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, (m - i) * p[j])
        adj[j] = min(1.0, running)
    return adj


def rank_biserial_paired(a: np.ndarray, b: np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation of d = a - b (zeros dropped, as Wilcoxon's
    default): (rank sum of d < 0 - rank sum of d > 0) / total; +1 = a always lower."""
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    r = ss.rankdata(np.abs(d))
    return float((r[d < 0].sum() - r[d > 0].sum()) / r.sum())


def rank_biserial_independent(a: np.ndarray, b: np.ndarray) -> float:
    """P(a < b) - P(a > b) over all cross pairs; +1 = every a below every b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = a[:, None] - b[None, :]
    return float(((diff < 0).sum() - (diff > 0).sum()) / diff.size)


def _values(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    vals = metric_values(runs, metric)
    df = runs.assign(error=vals["error"])
    return df[df["error"].notna()]


def pairwise_tests(runs: pd.DataFrame, metric: str = "final", *, alpha: float = 0.05,
                   paired: str = "auto") -> pd.DataFrame:
    """All method pairs within each (space, dataset) block.

    ``paired``: ``"auto"`` uses the Wilcoxon signed-rank test when both methods have values
    for exactly the same seeds (and each seed once), otherwise Mann-Whitney U on all values;
    ``"seed"`` always pairs by the seeds the two share; ``"none"`` always uses Mann-Whitney U.
    Two-sided tests, scipy's default (exact for small samples without ties). ``p_holm``:
    Holm-adjusted over the block's pairs; ``significant``: ``p_holm < alpha``.
    ``min_attainable_p``: the smallest p the test can give with these sample sizes.
    """
    if paired not in ("auto", "seed", "none"):
        raise AnalysisError(f"paired must be auto, seed or none, got '{paired}'")
    df = _values(runs, metric)
    rows = []
    for (space, dataset), blk in df.groupby(["space", "dataset"], sort=True):
        methods = sorted(blk["method"].unique())
        block_rows = []
        for ma, mb in itertools.combinations(methods, 2):
            ga, gb = blk[blk["method"] == ma], blk[blk["method"] == mb]
            a, b = ga["error"].to_numpy() * 100, gb["error"].to_numpy() * 100
            seeds_a, seeds_b = set(ga["seed"]), set(gb["seed"])
            unique = len(seeds_a) == len(ga) and len(seeds_b) == len(gb)
            use_paired = (paired == "seed" or (paired == "auto" and unique
                                                and seeds_a == seeds_b and len(ga) >= 2))
            row: dict[str, Any] = dict(space=space, dataset=dataset, method_a=ma, method_b=mb,
                                       n_a=len(a), n_b=len(b), mean_a_pct=float(a.mean()),
                                       mean_b_pct=float(b.mean()),
                                       diff_pct=float(a.mean() - b.mean()), note="")
            if use_paired:
                pa = ga.groupby("seed")["error"].mean() * 100
                pb = gb.groupby("seed")["error"].mean() * 100
                common = sorted(set(pa.index) & set(pb.index))
                xa, xb = pa[common].to_numpy(), pb[common].to_numpy()
                row.update(test="Wilcoxon signed-rank (paired by seed)", n_pairs=len(common))
                nz = int(np.count_nonzero(xa - xb))
                if len(common) == 0:
                    row.update(statistic=math.nan, p=math.nan, effect_rank_biserial=math.nan,
                               min_attainable_p=math.nan, note="no common seeds")
                elif nz == 0:
                    row.update(statistic=0.0, p=1.0, effect_rank_biserial=0.0,
                               min_attainable_p=1.0,
                               note="all paired differences are zero")
                else:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        res = ss.wilcoxon(xa, xb)
                    row.update(statistic=float(res.statistic), p=float(res.pvalue),
                               effect_rank_biserial=rank_biserial_paired(xa, xb),
                               min_attainable_p=min(1.0, 2.0 / 2 ** nz))
                if paired == "seed" and (len(common) < len(a) or len(common) < len(b)):
                    row["note"] = (row["note"] + "; " if row["note"] else "") + (
                        f"only {len(common)} common seeds used")
            else:
                row.update(test="Mann-Whitney U (unpaired)", n_pairs=0)
                if len(a) == 0 or len(b) == 0:
                    row.update(statistic=math.nan, p=math.nan, effect_rank_biserial=math.nan,
                               min_attainable_p=math.nan, note="a method has no values")
                else:
                    res = ss.mannwhitneyu(a, b, alternative="two-sided")
                    row.update(statistic=float(res.statistic), p=float(res.pvalue),
                               effect_rank_biserial=rank_biserial_independent(a, b),
                               min_attainable_p=min(1.0, 2.0 / math.comb(len(a) + len(b),
                                                                         len(a))))
                    if paired == "auto" and seeds_a != seeds_b:
                        row["note"] = (f"seed sets differ ({len(seeds_a & seeds_b)} common of "
                                       f"{len(a)} and {len(b)}), so unpaired")
            block_rows.append(row)
        adj = holm([r["p"] for r in block_rows])
        for r, pa_ in zip(block_rows, adj):
            r["p_holm"] = float(pa_)
            r["significant"] = bool(pa_ < alpha) if not math.isnan(pa_) else False
            e = r["effect_rank_biserial"]
            r["better"] = ("" if e is None or math.isnan(e) or e == 0
                           else (r["method_a"] if e > 0 else r["method_b"]))
            if not math.isnan(r["min_attainable_p"]) and r["min_attainable_p"] >= alpha:
                r["note"] = (r["note"] + "; " if r["note"] else "") + (
                    f"too few runs to ever reach p < {alpha:g}")
        rows += block_rows
    return pd.DataFrame(rows, columns=PAIRWISE_COLUMNS)


def critical_difference(k: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of mean ranks (Demsar 2006) for k methods, N blocks."""
    q = ss.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2.0)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n_blocks)))


def block_matrix(runs: pd.DataFrame, metric: str = "final", blocks: str = "auto"
                 ) -> tuple[pd.DataFrame, str, list[str]]:
    """Blocks x methods matrix of errors (%) for the Friedman test, the block unit used, and
    notes on what was left out.

    ``blocks="problem"``: one block per (space, dataset), its value the mean over seeds;
    ``"seed"``: one block per (space, dataset, seed); ``"auto"``: problems when at least 5
    (space, dataset) blocks have every method, else seeds. Blocks missing a method are dropped
    (the Friedman test needs complete blocks) and counted in the notes.
    """
    if blocks not in ("auto", "problem", "seed"):
        raise AnalysisError(f"blocks must be auto, problem or seed, got '{blocks}'")
    df = _values(runs, metric)
    df = df.assign(error=df["error"] * 100)
    notes: list[str] = []
    prob = df.groupby(["space", "dataset", "method"])["error"].mean().unstack("method")
    if blocks == "auto":
        blocks = "problem" if len(prob.dropna()) >= 5 else "seed"
    if blocks == "problem":
        mat = prob
    else:
        mat = (df.groupby(["space", "dataset", "seed", "method"])["error"].mean()
                 .unstack("method"))
    full = mat.dropna()
    if len(full) < len(mat):
        notes.append(f"{len(mat) - len(full)} of {len(mat)} blocks lack a method and are "
                     f"left out of the Friedman test")
    return full, blocks, notes


@dataclass
class Comparison:
    """What :func:`compare` found; ``format_compare`` says it in words."""

    metric: str
    alpha: float
    pairwise: pd.DataFrame
    block_unit: str = ""
    n_blocks: int = 0
    methods: list[str] = field(default_factory=list)
    friedman_statistic: float = math.nan
    friedman_p: float = math.nan
    mean_ranks: pd.Series | None = None
    nemenyi: pd.DataFrame | None = None
    cd: float = math.nan
    notes: list[str] = field(default_factory=list)

    @property
    def friedman_done(self) -> bool:
        return not math.isnan(self.friedman_p)

    def friedman_table(self) -> pd.DataFrame:
        """One row per method: mean rank, plus the test's numbers repeated on every row."""
        if self.mean_ranks is None:
            return pd.DataFrame(columns=["method", "mean_rank"])
        t = self.mean_ranks.rename("mean_rank").rename_axis("method").reset_index()
        t = t.assign(friedman_chi2=self.friedman_statistic, friedman_p=self.friedman_p,
                     n_blocks=self.n_blocks, block_unit=self.block_unit, k=len(self.methods),
                     critical_difference=self.cd, alpha=self.alpha, metric=self.metric)
        return t

    def write(self, out: str | Path) -> list[Path]:
        """``out`` (pairwise CSV), ``<stem>-friedman.csv``, ``<stem>-nemenyi.csv`` (p-values)."""
        out = Path(out)
        if out.suffix.lower() != ".csv":
            out = out.with_name(out.name + ".csv")
        out.parent.mkdir(parents=True, exist_ok=True)
        paths = [out]
        self.pairwise.to_csv(out, index=False, float_format="%.6g")
        if self.friedman_done:
            p = out.with_name(out.stem + "-friedman.csv")
            self.friedman_table().to_csv(p, index=False, float_format="%.6g")
            q = out.with_name(out.stem + "-nemenyi.csv")
            self.nemenyi.to_csv(q, float_format="%.6g")
            paths += [p, q]
        return paths


def friedman_nemenyi(matrix: pd.DataFrame, alpha: float = 0.05
                     ) -> tuple[float, float, pd.Series, pd.DataFrame, float]:
    """Friedman chi-square and p (scipy), mean ranks (1 = lowest error), the Nemenyi p-value
    matrix (scikit-posthocs) and the critical difference for a blocks x methods matrix."""
    import scikit_posthocs as sp

    k, n = matrix.shape[1], matrix.shape[0]
    if k < 3:
        raise AnalysisError(f"the Friedman test needs at least 3 methods, got {k}")
    if n < 2:
        raise AnalysisError(f"the Friedman test needs at least 2 complete blocks, got {n}")
    cols = [matrix[c].to_numpy() for c in matrix.columns]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stat, p = ss.friedmanchisquare(*cols)
    ranks = pd.Series(ss.rankdata(matrix.to_numpy(), axis=1).mean(axis=0),
                      index=list(matrix.columns), name="mean_rank")
    nem = sp.posthoc_nemenyi_friedman(matrix.to_numpy())
    nem.index = nem.columns = list(matrix.columns)
    return float(stat), float(p), ranks, nem, critical_difference(k, n, alpha)


def compare(runs: pd.DataFrame, metric: str = "final", *, alpha: float = 0.05,
            paired: str = "auto", blocks: str = "auto") -> Comparison:
    """Pairwise tests per (space, dataset) and, when at least 3 methods and 2 complete blocks
    exist, Friedman + Nemenyi across blocks (see :func:`block_matrix` for ``blocks``)."""
    parse_metric(metric)
    if not 0 < alpha < 1:
        raise AnalysisError(f"alpha must be in (0, 1), got {alpha}")
    pw = pairwise_tests(runs, metric, alpha=alpha, paired=paired)
    result = Comparison(metric=metric, alpha=alpha, pairwise=pw)
    mat, unit, notes = block_matrix(runs, metric, blocks)
    result.notes += notes
    result.block_unit = ("(space, dataset) blocks, value = mean over seeds" if unit == "problem"
                         else "(space, dataset, seed) blocks")
    result.methods = list(mat.columns)
    result.n_blocks = len(mat)
    try:
        (result.friedman_statistic, result.friedman_p, result.mean_ranks, result.nemenyi,
         result.cd) = friedman_nemenyi(mat, alpha)
    except AnalysisError as exc:
        result.notes.append(f"no Friedman test: {exc}")
    return result


# ----------------------------------------------------------------------------- words

def _p(p: float) -> str:
    if math.isnan(p):
        return "-"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def format_compare(result: Comparison) -> str:
    """Readable terminal report: per block a table of the pairs, then the verdict in words."""
    a = result.alpha
    out = [f"Statistics - {describe_metric(result.metric)}; errors in %; alpha = {a:g}; "
           f"p-values two-sided, Holm-corrected over the pairs of each (space, dataset)."]
    pw = result.pairwise
    if len(pw) == 0:
        out.append("\nNo (space, dataset) block has two methods with values: nothing to test.")
    header = ["A", "B", "test", "n A/B", "mean A", "mean B", "A-B", "p", "p Holm", "effect r",
              "significant"]
    right = [False, False, False, True, True, True, True, True, True, True, False]
    for (space, dataset), blk in pw.groupby(["space", "dataset"], sort=False):
        rows, words = [], []
        for r in blk.itertuples():
            test = "Wilcoxon" if r.test.startswith("Wilcoxon") else "Mann-Whitney"
            n = f"{r.n_pairs} pairs" if test == "Wilcoxon" else f"{r.n_a}/{r.n_b}"
            rows.append([r.method_a, r.method_b, test, n, fmt(r.mean_a_pct), fmt(r.mean_b_pct),
                         fmt(r.diff_pct), _p(r.p), _p(r.p_holm), fmt(r.effect_rank_biserial),
                         "yes" if r.significant else "no"])
            if math.isnan(r.p):
                words.append(f"  {r.method_a} vs {r.method_b}: not tested ({r.note}).")
            elif r.significant:
                worse = r.method_b if r.better == r.method_a else r.method_a
                words.append(f"  {r.better} has significantly lower error than {worse} "
                             f"(p_Holm = {_p(r.p_holm)} < {a:g}, effect r = "
                             f"{abs(r.effect_rank_biserial):.2f}).")
            else:
                words.append(f"  {r.method_a} vs {r.method_b}: no significant difference "
                             f"(p_Holm = {_p(r.p_holm)})"
                             + (f" - {r.note}" if r.note else "") + ".")
        out += ["", f"{space} / {dataset}", text_table(header, rows, right, indent="  ")]
        out += words
    out.append("")
    out.append("effect r: rank-biserial correlation, +1 = A always lower error than B, "
               "-1 = always higher; Wilcoxon when runs pair up by seed, else Mann-Whitney U.")
    out.append("")
    if result.friedman_done:
        k, n = len(result.methods), result.n_blocks
        sig = result.friedman_p < a
        out.append(f"Friedman test over {n} {result.block_unit}, {k} methods: "
                   f"chi2 = {result.friedman_statistic:.3f}, p = {_p(result.friedman_p)} -> "
                   + ("the methods' ranks differ significantly" if sig else
                      "no significant difference between the methods' ranks")
                   + f" at alpha = {a:g}.")
        ranks = result.mean_ranks.sort_values()
        out.append("Mean ranks (1 = lowest error): "
                   + ", ".join(f"{m} {r:.2f}" for m, r in ranks.items()))
        out.append(f"Nemenyi post-hoc (scikit-posthocs), critical difference CD = "
                   f"{result.cd:.3f} ranks at alpha = {a:g}"
                   + ("" if sig else " (shown for completeness: the Friedman test did not "
                      "reject, so these differences are not to be interpreted)") + ":")
        names = list(ranks.index)
        any_sig = False
        for i, j in itertools.combinations(range(len(names)), 2):
            mi, mj = names[i], names[j]
            p = float(result.nemenyi.loc[mi, mj])
            if p < a:
                any_sig = True
                out.append(f"  {mi} (rank {ranks[mi]:.2f}) is significantly better than {mj} "
                           f"(rank {ranks[mj]:.2f}), Nemenyi p = {_p(p)}.")
        if not any_sig:
            out.append("  no pair of methods differs significantly.")
    for note in result.notes:
        out.append(f"note: {note}")
    return "\n".join(out)
