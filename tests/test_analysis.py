"""Analysis layer: run loading, leaderboard, statistics, baselines, plots and CLI commands.

Everything runs on synthetic run directories written by the ``results`` fixture, whose
values are known: methods darts / sdarts-rs / maxw on spaces s1 / s2 of cifar10, 10 seeds
each. In s2, sdarts-rs is planted 5 points (plus 0.1*seed) below darts and maxw equals darts
exactly; in s1, darts seed 3 diverged, maxw seed 5 was interrupted and sdarts-rs has an
extra seed 10 still running.
"""
from __future__ import annotations

import csv
import gc
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

from click.testing import CliRunner  # noqa: E402

from nasbench_eval import analysis as A  # noqa: E402
from nasbench_eval.cli.analysis import compare_cmd, leaderboard_cmd, plot_cmd  # noqa: E402

METHODS = ("darts", "sdarts-rs", "maxw")
SPACES = ("s1", "s2")
EPOCHS = 5
OFF = [0.012, -0.008, 0.020, -0.015, 0.005, 0.0, -0.004, 0.017, -0.011, 0.009]
PERM = [3, 7, 0, 9, 1, 8, 2, 6, 4, 5]  # maxw's s1 noise: the same values, other seeds
BASE = {"s1": 0.30, "s2": 0.20}
PARAM_FREE = {"darts": 0.625, "sdarts-rs": 0.125, "maxw": 0.25}
WALL = {"darts": 1800.0, "sdarts-rs": 3600.0, "maxw": 5400.0}  # finished runs: 0.5, 1, 1.5 h


def final_error(method: str, space: str, seed: int) -> float:
    base = BASE[space] + OFF[seed % 10]
    if method == "sdarts-rs":
        return base - 0.05 - 0.001 * seed
    if method == "maxw" and space == "s1":
        return BASE[space] + OFF[PERM[seed]]
    return base  # darts, and maxw on s2 (zero difference)


def status_of(method: str, space: str, seed: int) -> tuple[str, int]:
    if space == "s1" and method == "darts" and seed == 3:
        return "diverged", 3
    if space == "s1" and method == "maxw" and seed == 5:
        return "interrupted", 1
    if space == "s1" and method == "sdarts-rs" and seed == 10:
        return "running", 2
    return "finished", EPOCHS


def anytime(final: float, epoch: int) -> float:
    """Per-epoch anytime error: falls by 2 points per epoch to ``final`` at the last epoch."""
    return final + 0.02 * (EPOCHS - 1 - epoch)


def write_run(root: Path, method: str, space: str, seed: int, **override) -> Path:
    status, done = status_of(method, space, seed)
    status, done = override.get("status", status), override.get("epochs_done", done)
    final = final_error(method, space, seed)
    run_id = f"{method}-{space}-cifar10-seed{seed}-{abs(hash((method, space, seed))) % 10**8:08d}"
    d = root / space / run_id
    d.mkdir(parents=True)
    rows = []
    for e in range(done):
        rows.append({"epoch": e, "train_loss": 1.0 / (e + 1), "val_acc": 0.5 + 0.05 * e,
                     "anytime_test_error": anytime(final, e),
                     "param_free_normal": PARAM_FREE[method] if e == EPOCHS - 1 else 0.75,
                     "param_free_reduce": 0.5, "wall_time_s": 10.0 * (e + 1),
                     "hessian_eig": (0.1 * (e + 1) * (1 + METHODS.index(method))
                                     if e % 2 == 1 or e == EPOCHS - 1 else "")})
    if rows:
        with (d / "metrics.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    last = rows[-1] if rows else {}
    wall = {"finished": WALL[method], "diverged": 1000.0, "interrupted": 300.0,
            "running": 100.0}[status]
    summary = {"run_id": run_id, "method": method, "space": space, "dataset": "cifar10",
               "seed": seed, "epochs": EPOCHS, "status": status, "epochs_done": done,
               "wall_time_s": wall, "final_genotype": None,
               "final_test_error": last.get("anytime_test_error"),
               "best_test_error": (min(r["anytime_test_error"] for r in rows) if rows else None),
               "final_val_acc": last.get("val_acc"),
               "final_param_free_fraction": last.get("param_free_normal")}
    if status == "diverged":
        summary.update(diverged_at_epoch=done, error=f"non-finite loss in epoch {done}")
    summary.update(override.get("summary", {}))
    (d / "summary.json").write_text(json.dumps(summary))
    cpu = method == "maxw"
    config = {"run_id": run_id,
              "config": {"method": method, "space": space, "dataset": "cifar10", "seed": seed,
                         "epochs": override.get("epochs", EPOCHS), "layers": 8, "channels": 16,
                         "out": str(root), "device": "auto", "progress": False},
              "environment": {"device": "cpu" if cpu else "cuda:0",
                              "device_name": "x86_64" if cpu else "NVIDIA H100 80GB HBM3",
                              "git_commit": "abc123"}}
    (d / "config.json").write_text(json.dumps(config))
    return d


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results")
    for space in SPACES:
        for method in METHODS:
            for seed in range(10):
                write_run(root, method, space, seed)
    write_run(root, "sdarts-rs", "s1", 10)  # still running
    return root


@pytest.fixture(scope="module")
def runs(results):
    return A.load_runs([results])


def expected(method: str, space: str) -> np.ndarray:
    """Hand-made list of the final errors (in %) that count: finished runs only."""
    return np.array([final_error(method, space, s) * 100 for s in range(11)
                     if s < 10 or (method, space) == ("sdarts-rs", "s1")
                     if status_of(method, space, s)[0] == "finished"])


# ----------------------------------------------------------------------------- loading

def test_load_runs_finds_every_run_with_identity_and_device(runs, results):
    assert len(runs) == 2 * 3 * 10 + 1
    for col in ("run_id", "method", "space", "dataset", "seed", "status", "epochs",
                "epochs_done", "final_test_error", "best_test_error",
                "final_param_free_fraction", "wall_time_s", "device", "path"):
        assert col in runs.columns
    assert runs["status"].value_counts().to_dict() == {"finished": 58, "diverged": 1,
                                                       "interrupted": 1, "running": 1}
    assert set(runs.loc[runs["method"] == "maxw", "device"]) == {"cpu"}
    assert set(runs.loc[runs["method"] == "darts", "device"]) == {"cuda"}
    r = runs[(runs["method"] == "darts") & (runs["space"] == "s2") & (runs["seed"] == 4)].iloc[0]
    assert r["final_test_error"] == pytest.approx(final_error("darts", "s2", 4))
    assert Path(r["path"]).is_dir() and Path(r["path"]).parent.parent == results
    # one run directory given directly, and its summary.json, name the same single run
    assert len(A.load_runs([r["path"]])) == 1
    assert len(A.load_runs([Path(r["path"]) / "summary.json"])) == 1


def test_load_metrics_has_identity_columns_and_hessian_gaps(results):
    m = A.load_metrics([results])
    assert {"run_id", "method", "space", "dataset", "seed", "epochs_completed",
            "anytime_test_error", "hessian_eig"} <= set(m.columns)
    one = m[(m["method"] == "darts") & (m["space"] == "s2") & (m["seed"] == 0)]
    assert list(one["epochs_completed"]) == [1, 2, 3, 4, 5]
    assert one["hessian_eig"].isna().tolist() == [True, False, True, False, False]
    assert len(m[(m["method"] == "maxw") & (m["space"] == "s1") & (m["seed"] == 5)]) == 1


def test_errors_name_the_path(tmp_path, results):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(A.AnalysisError, match="empty.*no run directories"):
        A.load_runs([empty])
    with pytest.raises(A.AnalysisError, match="no such file"):
        A.load_runs([tmp_path / "missing"])
    bad = tmp_path / "bad" / "run1"
    bad.mkdir(parents=True)
    (bad / "summary.json").write_text("{not json")
    with pytest.raises(A.AnalysisError, match=r"run1/summary\.json: malformed JSON"):
        A.load_runs([tmp_path / "bad"])
    (bad / "summary.json").write_text(json.dumps({"run_id": "x", "method": "darts"}))
    with pytest.raises(A.AnalysisError, match=r"run1/summary\.json: missing field\(s\) space"):
        A.load_runs([bad])
    pct = write_run(tmp_path / "pct", "darts", "s2", 0, summary={"final_test_error": 20.5})
    with pytest.raises(A.AnalysisError, match="outside \\[0, 1\\].*not percent"):
        A.load_runs([pct])
    # --skip-bad: the malformed directory is reported and the good ones still load
    (bad / "summary.json").write_text("{not json")
    with pytest.warns(UserWarning, match="skipped 1 malformed"):
        got = A.load_runs([tmp_path / "bad", results / "s2"], on_error="warn")
    assert len(got) == 30
    with pytest.raises(A.AnalysisError, match="unknown metric 'last'"):
        A.leaderboard(A.load_runs([results / "s2"]), metric="last")


# ----------------------------------------------------------------------------- leaderboard

def _row(table, method, space):
    t = table[(table["kind"] == "measured") & (table["method"] == method)
              & (table["space"] == space)]
    assert len(t) == 1
    return t.iloc[0]


@pytest.mark.parametrize("method,space", [("darts", "s1"), ("sdarts-rs", "s1"), ("maxw", "s2")])
def test_leaderboard_numbers_equal_hand_computed(runs, method, space):
    table = A.leaderboard(runs, "final")
    r = _row(table, method, space)
    x = expected(method, space)
    assert r["n"] == len(x)
    assert r["mean_pct"] == pytest.approx(sum(x) / len(x))
    assert r["std_pct"] == pytest.approx(math.sqrt(sum((v - x.mean()) ** 2 for v in x)
                                                   / (len(x) - 1)))
    s = sorted(x)
    assert r["median_pct"] == pytest.approx((s[len(s) // 2] + s[(len(s) - 1) // 2]) / 2)
    assert r["min_pct"] == pytest.approx(s[0])
    assert r["q25_pct"] == pytest.approx(np.percentile(x, 25))
    assert r["iqr_pct"] == pytest.approx(np.percentile(x, 75) - np.percentile(x, 25))
    # bootstrap CI: scipy's BCa interval of 10,000 resampled means, fixed RNG (seed 0)
    from scipy.stats import bootstrap

    ci = bootstrap((np.asarray(x, dtype=float),), np.mean, n_resamples=10_000, method="BCa",
                   confidence_level=0.95, rng=np.random.default_rng(0)).confidence_interval
    assert r["ci_low_pct"] == pytest.approx(ci.low)
    assert r["ci_high_pct"] == pytest.approx(ci.high)
    assert r["ci_low_pct"] < r["mean_pct"] < r["ci_high_pct"]
    assert r["search_hours"] == pytest.approx(WALL[method] / 3600)
    assert r["param_free_frac"] == pytest.approx(PARAM_FREE[method])
    assert r["device"] == ("cpu" if method == "maxw" else "cuda (NVIDIA H100 80GB HBM3)")
    # reproducible: the same call gives the same interval
    again = _row(A.leaderboard(runs, "final"), method, space)
    assert again["ci_low_pct"] == r["ci_low_pct"]


def test_diverged_and_unfinished_runs_are_counted(runs):
    table = A.leaderboard(runs, "final")
    d = _row(table, "darts", "s1")
    assert (d["n_runs"], d["n_finished"], d["n_diverged"], d["n_unfinished"], d["n"]) == \
        (10, 9, 1, 0, 9)
    # total hours include the diverged run's time
    assert d["total_hours"] == pytest.approx((9 * WALL["darts"] + 1000.0) / 3600)
    m = _row(table, "maxw", "s1")
    assert (m["n_runs"], m["n_diverged"], m["n_unfinished"], m["n"]) == (10, 0, 1, 9)
    s = _row(table, "sdarts-rs", "s1")
    assert (s["n_runs"], s["n_unfinished"], s["n"]) == (11, 1, 10)
    text = A.format_leaderboard(table)
    assert "darts on s1/cifar10: 1 diverged, 0 unfinished of 10 runs" in text
    wide = A.wide_table(table)
    assert "1 div." in wide.loc["darts", "s1 / cifar10"]
    assert "1 unf." in wide.loc["maxw", "s1 / cifar10"]


def test_mean_rank_within_block(runs):
    table = A.leaderboard(runs, "final")
    # s2: sdarts-rs lowest on every seed; darts and maxw tie on every seed
    assert _row(table, "sdarts-rs", "s2")["mean_rank"] == 1.0
    assert _row(table, "darts", "s2")["mean_rank"] == 2.5
    assert _row(table, "maxw", "s2")["rank_seeds"] == 10
    # s1: seeds where all three have a value (not 3: darts diverged, not 5: maxw interrupted)
    seeds = [s for s in range(10) if s not in (3, 5)]
    ranks = {m: [] for m in METHODS}
    for s in seeds:
        vals = {m: final_error(m, "s1", s) for m in METHODS}
        for m in METHODS:
            ranks[m].append(1 + sum(v < vals[m] for v in vals.values())
                            + 0.5 * (sum(v == vals[m] for v in vals.values()) - 1))
    for m in METHODS:
        assert _row(table, m, "s1")["mean_rank"] == pytest.approx(np.mean(ranks[m]))
        assert _row(table, m, "s1")["rank_seeds"] == 8


def test_anytime_and_best_metrics(runs):
    t2 = A.leaderboard(runs, "anytime-at-2")
    d = _row(t2, "darts", "s1")
    # the diverged run completed 3 epochs, so it has an epoch-2 value; still counted diverged
    assert d["n"] == 10 and d["n_diverged"] == 1
    x = [anytime(final_error("darts", "s1", s), 1) * 100 for s in range(10)]
    assert d["mean_pct"] == pytest.approx(np.mean(x))
    assert d["param_free_frac"] == pytest.approx(0.75)
    assert _row(t2, "maxw", "s1")["n"] == 9  # the interrupted run stopped after 1 epoch
    assert _row(t2, "sdarts-rs", "s1")["n"] == 11  # the running run has 2 epochs
    tb = A.leaderboard(runs, "best")
    assert _row(tb, "darts", "s2")["mean_pct"] == pytest.approx(expected("darts", "s2").mean())


def test_mixed_settings_warn(tmp_path):
    write_run(tmp_path, "darts", "s2", 0)
    write_run(tmp_path, "darts", "s2", 1, epochs=50)
    with pytest.warns(UserWarning, match="different settings"):
        t = A.leaderboard(A.load_runs([tmp_path]))
    assert t.iloc[0]["n_settings"] == 2


def test_wide_and_markdown_tables(runs, tmp_path):
    table = A.leaderboard(runs, "final")
    wide = A.wide_table(table)
    assert list(wide.columns) == ["s1 / cifar10", "s2 / cifar10", "avg. rank"]
    assert set(wide.index) == set(METHODS)
    r = _row(table, "darts", "s2")
    assert wide.loc["darts", "s2 / cifar10"] == \
        f"{r['mean_pct']:.2f} ± {r['std_pct']:.2f} (n=10)"
    md = A.leaderboard_markdown(table)
    assert "| method | s1 / cifar10 | s2 / cifar10 | avg. rank |" in md
    assert f"**{wide.loc['sdarts-rs', 's2 / cifar10']}**" in md  # lowest mean in bold
    paths = A.write_leaderboard(table, tmp_path / "lb.csv")
    assert [p.name for p in paths] == ["lb.csv", "lb-wide.csv", "lb.md"]
    assert all(p.stat().st_size > 0 for p in paths)


# ----------------------------------------------------------------------------- baselines

def test_baselines_one_row_per_figure_with_confirmation():
    b = A.load_baselines()
    for col in ("paper", "table", "dataset", "space", "method", "metric", "value", "setting",
                "confirmed"):
        assert b[col].notna().all()
        if col not in ("value", "confirmed"):
            assert (b[col].astype(str).str.len() > 0).all(), col
    t4 = b[b["file"] == "sdarts_table4_s1-s4.csv"]
    assert len(t4) == 3 * 4 * 7
    assert t4.loc[t4["method"] == "DARTS", "confirmed"].all()  # confirmed via DARTS-PT
    assert not t4.loc[t4["method"] != "DARTS", "confirmed"].any()  # [U] in the reference

    def value(f, **kw):
        sel = b[b["file"] == f]
        for k, v in kw.items():
            sel = sel[sel[k] == v]
        assert len(sel) == 1, kw
        return sel.iloc[0]["value"]

    assert value("sdarts_table4_s1-s4.csv", dataset="cifar10", space="s4", method="DARTS") == 7.20
    assert value("sdarts_table4_s1-s4.csv", dataset="svhn", space="s3",
                 method="SDARTS-ADV") == 2.21
    assert value("sdarts_table4_s1-s4.csv", dataset="cifar100", space="s2",
                 method="SDARTS-ADV") == 20.56
    assert value("cifar10_darts_space.csv", method="SDARTS-RS", metric="test_error") == 2.67
    assert value("cifar10_darts_space.csv", method="DARTS-2nd",
                 metric="test_error_spread") == 0.09
    assert value("sdarts_table5_param_free.csv", method="PC-DARTS", space="s2") == 0.75
    assert value("cifar10_darts_space.csv", method="MSR-DARTS", table="Table 1",
                 metric="test_error") == 2.92
    assert value("sharpdarts_table4_maxw.csv", method="Max-W", metric="val_error") == 5.44


def test_baselines_each_figure_lives_in_one_file():
    """A paper's figure (same paper, dataset, space, method, metric and value) is kept in one
    CSV, so --with-baselines never shows it twice under two table labels."""
    b = A.load_baselines()
    key = ["paper", "dataset", "space", "metric", "value"]
    b = b.assign(base=b["method"].str.replace(" (valid split)", "", regex=False))
    files = b.groupby(key + ["base"])["file"].nunique()
    assert (files == 1).all(), files[files > 1]
    drnas = b[(b["space"] == "nb201") & b["paper"].str.startswith("DrNAS")
              & (b["base"] == "DrNAS") & (b["metric"] == "test_error")]
    assert sorted(drnas["value"]) == [5.64, 26.49, 53.66] and drnas["confirmed"].all()
    assert set(drnas["file"]) == {"new_methods.csv"}
    optimal = b[b["method"].str.startswith("optimal") & (b["metric"] == "test_error")]
    assert sorted(optimal["value"]) == [5.63, 26.49, 52.69] and optimal["confirmed"].all()


def test_with_baselines_rows_are_marked_published(runs):
    table = A.leaderboard(runs, "final", baselines=True)
    pub = table[table["kind"] == "published"]
    assert set(zip(pub["space"], pub["dataset"])) <= {("s1", "cifar10"), ("s2", "cifar10")}
    darts = pub[(pub["method"] == "DARTS") & (pub["space"] == "s1")
                & (pub["table"] == "Table 4")].iloc[0]
    assert darts["mean_pct"] == 3.84 and bool(darts["confirmed"])
    text = A.format_leaderboard(table)
    assert "[published: SDARTS Table 4]" in text and "[U]" in text
    assert "not the supernet-oracle anytime error" in text
    # the measured rows are unchanged by the published ones
    assert _row(table, "darts", "s2")["mean_pct"] == pytest.approx(expected("darts", "s2").mean())
    everything = A.leaderboard(runs, "final", baselines=True, baseline_blocks="all")
    assert ("darts", "cifar10") in set(zip(everything["space"], everything["dataset"]))


# ----------------------------------------------------------------------------- statistics

def _pair(pw, space, a, b):
    r = pw[(pw["space"] == space) & (pw["method_a"] == a) & (pw["method_b"] == b)]
    assert len(r) == 1
    return r.iloc[0]


def test_planted_difference_is_significant_and_zero_difference_is_not(runs):
    pw = A.pairwise_tests(runs, "final", alpha=0.05)
    big = _pair(pw, "s2", "darts", "sdarts-rs")
    assert big["test"].startswith("Wilcoxon") and big["n_pairs"] == 10
    assert big["p"] == pytest.approx(2 / 2 ** 10)  # exact: every difference has one sign
    assert big["significant"] and big["better"] == "sdarts-rs"
    assert big["effect_rank_biserial"] == -1.0
    assert big["diff_pct"] == pytest.approx(5.0 + 0.45)
    zero = _pair(pw, "s2", "darts", "maxw")
    assert zero["p"] == 1.0 and not zero["significant"]
    # s1: the same noise values on other seeds, unpaired (seed sets differ) -> not significant
    same = _pair(pw, "s1", "darts", "maxw")
    assert same["test"].startswith("Mann-Whitney") and "seed sets differ" in same["note"]
    assert same["p_holm"] > 0.05 and not same["significant"]
    text = A.format_compare(A.compare(runs, "final"))
    assert "sdarts-rs has significantly lower error than darts" in text
    assert "darts vs maxw: no significant difference" in text


def test_holm_matches_the_textbook_and_statsmodels(monkeypatch):
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    adj = A.holm(p)
    # by hand: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 -> running max
    assert adj[3] == pytest.approx(0.02) and adj[0] == pytest.approx(0.03)
    assert adj[2] == pytest.approx(0.06) and adj[1] == pytest.approx(0.06)
    assert np.isnan(adj[4])
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    # multipletests runs gc.collect() on every call: ~0.1 s each in a test process holding
    # torch, 30 s for the loop below; collecting garbage changes none of its results
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)
    ref = multitest.multipletests(p[:4], method="holm")[1]
    assert np.allclose(adj[:4], ref)
    rng = np.random.default_rng(1)  # ties, values near 1, NaN anywhere: the same as statsmodels
    for _ in range(200):
        q = np.round(rng.uniform(0, 1, rng.integers(1, 12)) ** 3, 2)
        q[rng.uniform(size=q.size) < 0.15] = np.nan
        ok = ~np.isnan(q)
        got = A.holm(q)
        assert np.array_equal(np.isnan(got), ~ok)
        if ok.any():
            assert np.allclose(got[ok], multitest.multipletests(q[ok], method="holm")[1])


def test_bootstrap_ci_is_scipys_bca_interval():
    from scipy.stats import bootstrap

    x = np.array([2.61, 2.75, 3.02, 2.58, 2.94, 3.41, 2.70])
    for ci, n_boot, seed in ((0.95, 10_000, 0), (0.9, 2_000, 7)):
        ref = bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=ci, method="BCa",
                        rng=np.random.default_rng(seed)).confidence_interval
        assert A.bootstrap_ci(x, ci, n_boot, seed) == (ref.low, ref.high)
    assert A.bootstrap_ci(np.array([3.0, 3.0, 3.0])) == (3.0, 3.0)  # no spread
    assert all(math.isnan(v) for v in A.bootstrap_ci(np.array([3.0])))


def test_friedman_and_nemenyi_agree_with_scipy_and_scikit_posthocs(runs):
    import scikit_posthocs as sp
    from scipy import stats as ss

    res = A.compare(runs, "final", blocks="seed")
    # the matrix by hand: (space, seed) blocks where all three methods finished
    rows = []
    for space in SPACES:
        for s in range(10):
            if all(status_of(m, space, s)[0] == "finished" for m in METHODS):
                rows.append([final_error(m, space, s) * 100 for m in sorted(METHODS)])
    mat = np.array(rows)
    assert res.n_blocks == len(rows) == 18
    stat, p = ss.friedmanchisquare(*mat.T)
    assert res.friedman_statistic == pytest.approx(stat)
    assert res.friedman_p == pytest.approx(p)
    nem = sp.posthoc_nemenyi_friedman(mat)
    assert np.allclose(res.nemenyi.to_numpy(), nem.to_numpy())
    assert list(res.nemenyi.columns) == sorted(METHODS)
    ranks = ss.rankdata(mat, axis=1).mean(axis=0)
    assert np.allclose(res.mean_ranks.to_numpy(), ranks)
    k, n = 3, 18
    cd = ss.studentized_range.ppf(0.95, k, np.inf) / math.sqrt(2) * math.sqrt(k * (k + 1) / (6 * n))
    assert res.cd == pytest.approx(cd)
    # Nemenyi p < alpha exactly when the rank difference exceeds the critical difference
    for a in range(3):
        for b in range(a + 1, 3):
            assert (nem.iloc[a, b] < 0.05) == (abs(ranks[a] - ranks[b]) > cd)
    problem = A.compare(runs, "final", blocks="problem")
    assert problem.n_blocks == 2 and "mean over seeds" in problem.block_unit


def test_compare_writes_csvs(runs, tmp_path):
    paths = A.compare(runs, "final").write(tmp_path / "cmp.csv")
    assert [p.name for p in paths] == ["cmp.csv", "cmp-friedman.csv", "cmp-nemenyi.csv"]
    with paths[0].open() as f:
        assert len(list(csv.DictReader(f))) == 6  # 3 pairs in each of 2 blocks


# ----------------------------------------------------------------------------- plots

def test_every_plot_kind_writes_a_nonempty_png(runs, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        written, skipped = A.make_plots(runs, A.PLOT_KINDS, tmp_path, formats=("png",))
    assert skipped == []
    names = sorted(p.name for p in written)
    assert names == sorted(f"{k.replace('-', '_')}.png" for k in A.PLOT_KINDS)
    for p in written:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, p


def test_hessian_plot_without_values_is_a_clear_error(tmp_path):
    write_run(tmp_path, "darts", "s2", 0)
    m = A.load_metrics([tmp_path]).drop(columns="hessian_eig")
    with pytest.raises(A.AnalysisError, match="--hessian-every"):
        A.plot_hessian(m)


# ----------------------------------------------------------------------------- CLI

def test_cli_leaderboard(results, tmp_path):
    out = tmp_path / "lb.csv"
    res = CliRunner().invoke(leaderboard_cmd, [str(results), "--out", str(out),
                                               "--with-baselines"])
    assert res.exit_code == 0, res.output
    assert "s2 / cifar10" in res.output and "sdarts-rs" in res.output
    assert "[published: SDARTS Table 4]" in res.output
    assert out.exists() and (tmp_path / "lb-wide.csv").exists() and (tmp_path / "lb.md").exists()
    res = CliRunner().invoke(leaderboard_cmd, [str(results), "--metric", "anytime-at-9"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(leaderboard_cmd, [str(results), "--metric", "nope"])
    assert res.exit_code == 1 and "unknown metric 'nope'" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    res = CliRunner().invoke(leaderboard_cmd, [str(empty)])
    assert res.exit_code == 1 and "no run directories found" in res.output


def test_cli_compare(results, tmp_path):
    res = CliRunner().invoke(compare_cmd, [str(results), "--out", str(tmp_path / "c.csv")])
    assert res.exit_code == 0, res.output
    assert "significantly lower error" in res.output
    assert "Friedman test over" in res.output and "critical difference CD" in res.output
    assert (tmp_path / "c-nemenyi.csv").exists()


def test_cli_plot(results, tmp_path):
    res = CliRunner().invoke(plot_cmd, [str(results / "s2"), "--kind", "seeds", "--kind",
                                        "anytime", "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    for name in ("seeds.png", "seeds.pdf", "anytime.png", "anytime.pdf"):
        assert (tmp_path / name).stat().st_size > 0


def test_runs_stopped_early_are_counted(tmp_path):
    write_run(tmp_path, "darts", "s2", 0)
    write_run(tmp_path, "darts", "s2", 1,
              summary={"stopped_early_at_epoch": 3, "stop_reason": "eigenvalue criterion"})
    t = A.leaderboard(A.load_runs([tmp_path]))
    assert (t.iloc[0]["n_finished"], t.iloc[0]["n_stopped_early"]) == (2, 1)
    assert "1 stopped early" in A.wide_table(t).iloc[0, 0]


def test_evaluated_metric_reads_evaluation_json(tmp_path):
    for seed, err in ((0, 0.031), (1, 0.029)):
        d = write_run(tmp_path, "darts", "s2", seed)
        (d / "evaluation.json").write_text(json.dumps(
            {"status": "finished", "final_test_error": err, "params_M": 3.3, "epochs": 600}))
    write_run(tmp_path, "darts", "s2", 2)  # searched, not evaluated
    runs = A.load_runs([tmp_path])
    t = A.leaderboard(runs, "evaluated", baselines=True, baseline_blocks="all")
    r = _row(t, "darts", "s2")
    assert (r["n"], r["n_finished"]) == (2, 3)
    assert r["mean_pct"] == pytest.approx(3.0) and r["params_m"] == pytest.approx(3.3)
    assert "retrained from scratch" in A.format_leaderboard(t)
    bad = write_run(tmp_path / "bad", "darts", "s2", 0)
    (bad / "evaluation.json").write_text("{")
    with pytest.raises(A.AnalysisError, match=r"evaluation\.json: malformed JSON"):
        A.load_runs([bad])
