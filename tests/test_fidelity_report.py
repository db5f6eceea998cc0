"""The fidelity table (analysis/fidelity.py) on planted run directories."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats as sps

from nasbench_eval.analysis.fidelity import fidelity_table, per_run
from nasbench_eval.cli import main

SEEDS = range(6)


def planted(method: str, space: str, seed: int) -> tuple[list[float], list[float]]:
    """(param-free share per epoch, Hessian eigenvalue per epoch or NaN) of one run."""
    pf_final = {"darts": 0.75 + 0.125 * (seed % 2), "sdarts-adv": 0.125 * (seed % 2)}[method]
    pf = [0.5, 0.5, 0.625, pf_final]
    eig_last = {"darts": 2.0 + seed, "sdarts-adv": 1.0 + 0.1 * seed}[method]
    if space == "s3":  # no difference planted on s3
        pf, eig_last = [0.5, 0.5, 0.5, 0.25 + 0.125 * (seed % 3)], 1.0 + 0.1 * seed
    return pf, [1.0, math.nan, 1.5, eig_last]


def write_runs(root: Path) -> None:
    for method in ("darts", "sdarts-adv"):
        for space in ("s2", "s3"):
            for seed in SEEDS:
                run_id = f"{method}-{space}-digits-seed{seed}-0000"
                d = root / run_id
                d.mkdir(parents=True)
                pf, eig = planted(method, space, seed)
                with (d / "metrics.csv").open("w", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(["epoch", "anytime_test_error", "param_free_normal", "hessian_eig"])
                    for e, (p, h) in enumerate(zip(pf, eig)):
                        w.writerow([e, 0.5, p, "" if math.isnan(h) else h])
                (d / "summary.json").write_text(json.dumps({
                    "run_id": run_id, "method": method, "space": space, "dataset": "digits",
                    "seed": seed, "status": "finished", "epochs": 4, "epochs_done": 4,
                    "final_test_error": 0.5, "best_test_error": 0.5,
                    "final_param_free_fraction": pf[-1]}))
                (d / "config.json").write_text(json.dumps({"run_id": run_id, "config": {
                    "method": method, "space": space, "dataset": "digits", "seed": seed,
                    "epochs": 4}, "environment": {"device": "cpu"}}))


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fidelity")
    write_runs(root)
    return root


def test_per_run_values(results):
    r = per_run([results]).set_index("run_id")
    row = r.loc["darts-s2-digits-seed3-0000"]
    assert row.param_free_first == 0.5 and row.param_free_final == 0.875
    assert row.eig_first == 1.0 and row.eig_last == 5.0 and row.eig_growth == 5.0


def test_summary_and_holm_corrected_tests(results):
    summary, tests = fidelity_table([results])
    s = summary.set_index(["space", "method"])
    darts_growth = np.array([2.0 + k for k in SEEDS])
    assert s.loc[("s2", "darts"), "eig_growth_mean"] == pytest.approx(darts_growth.mean())
    assert s.loc[("s2", "darts"), "eig_growth_std"] == pytest.approx(darts_growth.std(ddof=1))
    assert s.loc[("s2", "sdarts-adv"), "param_free_final_mean"] == pytest.approx(0.0625)
    assert s.loc[("s2", "darts"), "n"] == 6
    assert "collapse" in s.loc[("s2", "darts"), "published_param_free"]
    t = tests.set_index(["space", "metric"])
    perm = sps.PermutationMethod(n_resamples=np.inf)
    adv_growth = np.array([1.0 + 0.1 * k for k in SEEDS])
    raw = sps.mannwhitneyu(darts_growth, adv_growth, alternative="two-sided", method=perm).pvalue
    assert t.loc[("s2", "eig_growth"), "p"] == pytest.approx(raw)
    assert t.loc[("s3", "eig_growth"), "p"] == 1.0  # identical planted values
    # Holm: the smallest of the 4 p-values is multiplied by 4
    smallest = tests["p"].min()
    assert tests["p_holm"].min() == pytest.approx(min(1.0, 4 * smallest))
    assert t.loc[("s2", "param_free_final"), "p_holm"] < 0.05
    assert t.loc[("s3", "param_free_final"), "p_holm"] > 0.05


def test_cli_writes_the_readme_table(results, tmp_path):
    res = CliRunner().invoke(main, ["fidelity", str(results), "--out-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "fidelity.md").read_text()
    assert md.count("\n| s2 |") == 2 and md.count("\n| s3 |") == 2
    assert "0.50 ± 0.00 -> 0.81 ± 0.07" in md  # darts s2: first -> final share
    for name in ("fidelity.csv", "fidelity-tests.csv", "fidelity-runs.csv"):
        assert (tmp_path / name).stat().st_size > 0
    bad = CliRunner().invoke(main, ["fidelity", str(tmp_path)])
    assert bad.exit_code != 0 and "Error" in bad.output


def test_diverged_runs_are_counted_and_mixed_settings_refused(results, tmp_path):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(results, root)
    d = root / "darts-s2-digits-seed0-0000"
    summary = json.loads((d / "summary.json").read_text())
    (d / "summary.json").write_text(json.dumps({**summary, "status": "diverged"}))
    s, _ = fidelity_table([root])
    row = s.set_index(["space", "method"]).loc[("s2", "darts")]
    assert row["diverged"] == 1 and row["n"] == 5
    d = root / "darts-s3-digits-seed0-0000"
    cfg = json.loads((d / "config.json").read_text())
    cfg["config"]["epochs"] = 99
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(Exception, match="different settings"):
        fidelity_table([root])
