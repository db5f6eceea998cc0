"""The `train` oracle on DARTS-cell genotypes, `--oracle-every`, and `--oracle auto`'s choice."""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import replace

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")

from click.testing import CliRunner  # noqa: E402
from helpers import read_metrics  # noqa: E402

from nasbench_eval import analysis as A  # noqa: E402
from nasbench_eval import run  # noqa: E402
from nasbench_eval.cli.analysis import compare_cmd, leaderboard_cmd, plot_cmd  # noqa: E402
from nasbench_eval.config import RunConfig  # noqa: E402
from nasbench_eval.errors import NasbenchEvalError  # noqa: E402
from nasbench_eval.oracles.train import TrainOracle  # noqa: E402
from nasbench_eval.resolve import resolve_config  # noqa: E402
from nasbench_eval.runner import build_search, reference_scores  # noqa: E402
from nasbench_eval.spaces import load_space  # noqa: E402

TINY = dict(train_epochs=1, cells=2, channels=4, batch_size=32)


def _search(tmp_path, space="s3", **kw):
    cfg = RunConfig(method="darts", space=space, dataset="digits", epochs=2, layers=3,
                    channels=4, batch_size=32, max_steps_per_epoch=3, oracle="train",
                    oracle_options=dict(TINY), out=str(tmp_path), progress=False,
                    bn_recalibration_batches=1, **kw)
    return build_search(cfg)


def test_darts_genotypes_train_once_per_genotype_and_setting(tmp_path):
    search = _search(tmp_path)
    ctx = search.oracle_context()
    g = search.space.sample_genotype(torch.Generator().manual_seed(1))
    other = search.space.sample_genotype(torch.Generator().manual_seed(2))
    assert g != other
    oracle = TrainOracle()
    first = oracle.score(g, ctx)
    assert 0.0 <= first["test_error"] <= 1.0 and first["cached"] is False
    assert first["train_epochs"] == 1 and first["train_time_s"] > 0 and oracle.trainings == 1
    assert oracle.score(g, ctx) == {**first, "cached": True} and oracle.trainings == 1
    # a fresh oracle (another run of the results directory) reads the file: no training
    fresh = TrainOracle()
    assert fresh.score(g, ctx)["test_error"] == first["test_error"] and fresh.trainings == 0
    # another genotype, and another setting, are trained
    assert fresh.score(other, ctx)["cached"] is False and fresh.trainings == 1
    wider = TrainOracle(channels=6)
    assert wider.score(g, ctx)["cached"] is False and wider.trainings == 1
    doc = json.loads((tmp_path / "oracle-cache" / "train.json").read_text())
    entries = list(doc["entries"].values())
    assert len(entries) == 3
    assert {e["genotype_str"] for e in entries} == {str(g), str(other)}
    assert {e["settings"]["channels"] for e in entries} == {4, 6}
    assert all(e["settings"]["cells"] == 2 and e["settings"]["dataset"] == "digits"
               for e in entries)


def test_darts_training_is_deterministic_and_leaves_the_rng_alone(tmp_path):
    search = _search(tmp_path)
    g = search.space.sample_genotype(torch.Generator().manual_seed(1))
    errors = []
    for i in range(2):
        ctx = replace(search.oracle_context(),
                      cfg=replace(search.cfg, out=str(tmp_path / f"fresh{i}")))
        torch.manual_seed(123)
        errors.append(TrainOracle().score(g, ctx)["test_error"])
        after = torch.rand(3)
        torch.manual_seed(123)
        assert torch.equal(after, torch.rand(3))  # the caller's stream did not move
    assert errors[0] == errors[1]


def test_budget_defaults_come_from_the_family_and_options_are_checked(tmp_path):
    search = _search(tmp_path)
    oracle = TrainOracle()
    recipe = oracle.recipe(search.space, search.cfg)
    cfg = replace(search.cfg, oracle_options={})
    opts = oracle.resolved_options(cfg, recipe)
    from nasbench_eval.spaces.darts.family import TRAIN_ORACLE_BUDGET

    assert {k: opts[k] for k in TRAIN_ORACLE_BUDGET["digits"]} == TRAIN_ORACLE_BUDGET["digits"]
    g = search.space.sample_genotype(torch.Generator().manual_seed(1))
    with pytest.raises(NasbenchEvalError, match="'cells_per_stack' does not apply"):
        TrainOracle(cells_per_stack=2).score(g, search.oracle_context())
    with pytest.raises(NasbenchEvalError, match="no option"):
        TrainOracle(layers=3)


def test_search_metrics_do_not_depend_on_the_oracle_or_its_schedule(tmp_path):
    base = RunConfig(method="darts", space="s3", dataset="digits", epochs=3, layers=3,
                     channels=4, batch_size=32, max_steps_per_epoch=2, progress=False,
                     bn_recalibration_batches=1, out=str(tmp_path))
    variants = {"oneshot": dict(oracle="oneshot"),
                "train": dict(oracle="train", oracle_options=dict(TINY)),
                "train-every-2": dict(oracle="train", oracle_options=dict(TINY), oracle_every=2)}
    searched = {}
    for name, kw in variants.items():
        rows = read_metrics(run(replace(base, **kw)))
        searched[name] = [{k: v for k, v in r.items()
                           if not k.startswith(("oracle_", "anytime"))} for r in rows]
        if name == "train-every-2":
            assert [r["anytime_test_error"] != "" for r in rows] == [False, True, True]
            assert rows[0]["oracle_train_epochs"] == "" and rows[2]["oracle_train_epochs"] == "1"
    assert searched["oneshot"] == searched["train"] == searched["train-every-2"]


def test_oracle_every_is_neutral_in_the_run_id_and_checked():
    cfg = RunConfig()
    assert replace(cfg, oracle_every=1).run_id() == cfg.run_id()
    assert replace(cfg, oracle_every=2).run_id() != cfg.run_id()
    with pytest.raises(ValueError, match="oracle_every"):
        RunConfig(oracle_every=0)


def test_auto_prefers_the_measured_oracle():
    assert resolve_config(RunConfig(space="s3", dataset="digits")).oracle == "train"
    # measured: oneshot ranked better on the darts space (results/oracle-fidelity)
    assert resolve_config(RunConfig(space="darts", dataset="digits")).oracle == "oneshot"
    assert resolve_config(RunConfig(space="s2", dataset="digits")).oracle == "oneshot"  # unmeasured
    assert resolve_config(RunConfig(space="s3", dataset="cifar10")).oracle == "oneshot"
    # measured on a reduced Fashion-MNIST (results/oracle-fidelity-fmnist): oneshot ahead on
    # S3, no oracle separated on the darts space; auto keeps oneshot on both
    for space in ("s3", "darts"):
        assert resolve_config(RunConfig(space=space, dataset="fashion-mnist")).oracle == "oneshot"
    assert resolve_config(RunConfig(space="nb1shot1-1", dataset="digits",
                                    data_root="/nonexistent")).oracle == "oneshot"
    # before issue 22 auto resolved to oneshot here: that run keeps its id when asked for by
    # name, and auto now names another (train) run
    explicit = RunConfig(space="s3", dataset="digits", oracle="oneshot")
    assert resolve_config(explicit).run_id() == "darts-s3-digits-seed0-58b87b0c"
    assert resolve_config(RunConfig(space="s3", dataset="digits")).run_id() != \
        "darts-s3-digits-seed0-58b87b0c"


def test_reference_scores_use_the_runs_oracle(tmp_path):
    run_dir = run(method="darts", space="s3", dataset="digits", epochs=1, layers=3, channels=4,
                  batch_size=32, max_steps_per_epoch=2, oracle="train", oracle_options=TINY,
                  out=str(tmp_path), progress=False)
    ref = reference_scores(run_dir, n_random=2)
    assert ref["oracle"] == "train" and ref["chance_error"] == pytest.approx(0.9)
    assert len(ref["random_test_errors"]) == 2
    assert all(0.0 <= e <= 1.0 for e in ref["random_test_errors"])
    again = reference_scores(run_dir, n_random=2)  # the same cells, from the cache
    assert again["random_test_errors"] == ref["random_test_errors"]


# ----------------------------------------------------------------------------- gaps

@pytest.fixture(scope="module")
def gappy(tmp_path_factory):
    """Two methods x 3 seeds, 3 epochs, scored at epochs 2 and 3 only (--oracle-every 2);
    train_portion 0.9 keeps each epoch's search-val pass short."""
    root = tmp_path_factory.mktemp("gappy")
    for method in ("darts", "random-ws"):
        for seed in range(3):
            run(method=method, space="s3", dataset="digits", seed=seed, epochs=3, layers=3,
                channels=4, batch_size=32, max_steps_per_epoch=2, oracle="oneshot",
                train_portion=0.9, oracle_every=2, bn_recalibration_batches=1, out=str(root),
                progress=False,
                method_options={"rws_samples": 2, "rws_eval_batches": 1, "rws_top": 1}
                if method == "random-ws" else {})
    return root


def test_gaps_are_empty_cells_and_the_summary_uses_the_scores(gappy):
    for d in gappy.iterdir():
        if not (d / "summary.json").exists():
            continue
        with open(d / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        errs = [r["anytime_test_error"] for r in rows]
        assert errs[0] == "" and errs[1] != "" and errs[2] != ""
        summary = json.loads((d / "summary.json").read_text())
        assert summary["final_test_error"] == pytest.approx(float(errs[2]))
        assert summary["best_test_error"] == pytest.approx(min(float(errs[1]), float(errs[2])))


def test_leaderboard_compare_and_plot_handle_the_gaps(gappy, tmp_path):
    runs = A.load_runs([gappy])
    for metric in ("final", "best", "anytime-at-2"):
        values = A.metric_values(runs, metric)["error"]
        assert values.notna().all(), metric
    with pytest.warns(UserWarning, match="did not score it"):  # not scored: no value
        assert A.metric_values(runs, "anytime-at-1")["error"].isna().all()
    m = A.load_metrics([gappy])
    assert m["anytime_test_error"].isna().sum() == 6
    for metric in ("final", "best", "anytime-at-2", "anytime-at-1"):
        res = CliRunner().invoke(leaderboard_cmd, [str(gappy), "--metric", metric])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(leaderboard_cmd, [str(gappy), "--metric", "anytime-at-1"])
    assert "not scored" in res.output
    res = CliRunner().invoke(compare_cmd, [str(gappy), "--metric", "best"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(plot_cmd, [str(gappy), "--kind", "anytime", "--out-dir",
                                        str(tmp_path)])
    assert res.exit_code == 0, res.output
    png = next(tmp_path.glob("anytime*.p*"))
    assert png.stat().st_size > 5000
    assert not math.isnan(float(m.dropna(subset=["anytime_test_error"])
                                ["anytime_test_error"].mean()))
