"""Issue 17, "errors that do not say what to fix": every bad input names the flag (or file
field) the user typed and what it expects, suggests the near name for a typo, and creates
nothing; each case here failed on the code before (a torch error, an internal field name, no
suggestion, advice that does not work)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from nasbench_eval.cli import main
from nasbench_eval.config import RunConfig
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.sweep import SweepError, run_sweep

TINY = ["--epochs", "1", "--layers", "2", "--channels", "4", "--batch-size", "16",
        "--max-steps-per-epoch", "1"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("args, expected", [
    (["--w-lr", "-1"], "--w-lr: expected a finite number >= 0, got -1.0"),
    (["--alpha-lr", "nan"], "--alpha-lr: expected a finite number >= 0, got nan"),
    (["--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["--batch-size", "0"], "--batch-size: expected a positive integer, got 0"),
    (["--train-portion", "1.5"], "--train-portion: expected a number in (0, 1), got 1.5"),
    (["--lr-warmup", "-2"], "--lr-warmup: expected an integer >= 0, got -2"),
])
def test_bad_run_settings_name_the_flag_before_any_work(tmp_path, args, expected):
    res = invoke("run", *args, "--out", str(tmp_path))
    assert res.exit_code != 0 and expected in res.output, res.output
    assert "Invalid learning rate" not in res.output and "batch_size" not in res.output
    assert not any(tmp_path.iterdir())


def test_config_errors_name_flags_not_fields():
    from nasbench_eval.config import ConfigError

    with pytest.raises(ConfigError, match=r"^--max-steps-per-epoch: ") as info:
        RunConfig(max_steps_per_epoch=0)
    assert info.value.field == "max_steps_per_epoch" and isinstance(info.value, ValueError)
    with pytest.raises(ConfigError, match=r"^setting 'bn_recalibration_batches': "):
        RunConfig(bn_recalibration_batches=0)  # no flag of `run`: a sweep file's key


def test_evaluate_settings_name_its_flags(tmp_path):
    cell = [["skip_connect", 0], ["skip_connect", 1]] * 4
    genotype = json.dumps({"normal": cell, "reduce": cell})
    for args, expected in ((["--batch-size", "0"], "--batch-size: expected a positive integer"),
                           (["--lr", "nan"], "--lr: expected a finite number >= 0"),
                           (["--seed", "-1"], "--seed: expected an integer >= 0")):
        res = invoke("evaluate", "--genotype", genotype, *args, "--out", str(tmp_path))
        assert res.exit_code != 0 and expected in res.output, res.output
        assert "batch_size" not in res.output
    assert not any(tmp_path.iterdir())


def test_an_option_of_another_method_says_whose_it_is(tmp_path):
    for args in (["-o", "pgd_steps=abc"], ["--pgd-step-size", "abc"]):
        # (darts has them since issue 18: --perturb adversarial)
        res = invoke("run", "--method", "msr", *args, "--out", str(tmp_path))
        assert res.exit_code != 0 and "method 'msr' has no option --pgd-" in res.output
        assert "sdarts-adv" in res.output and "(choose one with --method)" in res.output
    res = invoke("run", "--method", "sdarts-adv", "-o", "pgd_steps=abc", "--out", str(tmp_path))
    assert "--pgd-steps: expected an integer >= 1, got 'abc'" in res.output
    res = invoke("run", "--method", "sdarts-adv", "--pgd-step-size", "abc", "--out",
                 str(tmp_path))
    assert "--pgd-step-size: expected a number > 0 or none, got 'abc'" in res.output
    res = invoke("run", "--method", "sdarts-adv", "-o", "pgd_stepz=1", "--out", str(tmp_path))
    assert "has no option --pgd-stepz" in res.output
    assert "did you mean '--pgd-steps'?" in res.output
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("args, hint", [
    (["run", "--method", "dartz"], "did you mean 'darts'?"),
    (["run", "--space", "s33"], "did you mean 's3'?"),
    (["run", "--dataset", "digit"], "did you mean 'digits'?"),
    (["run", "--oracle", "onesht"], "did you mean 'oneshot'?"),
    (["run", "--lr-schedule", "cosin"], "did you mean 'cosine'?"),
    (["run", "--fused-edges", "of"], "did you mean 'off'?"),
    (["run", "--method", "msr", "--msr-mixing", "stable_rank"], "did you mean 'stable-rank'?"),
    (["sweep", "--methods", "darts", "--spaces", "s3", "--executor", "rey"], "did you mean 'ray'?"),
    (["plot", ".", "--kind", "anytim"], "did you mean 'anytime'?"),
])
def test_unknown_names_suggest_the_near_one(tmp_path, args, hint):
    res = invoke(*args, "--out", str(tmp_path))
    assert res.exit_code != 0 and hint in res.output, res.output


def test_unknown_oracle_lists_auto(tmp_path):
    res = invoke("run", "--oracle", "foo", "--out", str(tmp_path))
    assert res.exit_code != 0
    assert "unknown oracle 'foo'; valid choices: auto, nasbench101, " in res.output
    assert "oneshot" in res.output and "train" in res.output


def test_sweep_takes_oracle_auto(tmp_path):
    plan = run_sweep(methods="darts", spaces="s3", oracle="auto", out=str(tmp_path),
                     dry_run=True)
    assert plan["size"] == 1  # before: "unknown oracle 'auto'"
    with pytest.raises(SweepError, match="--oracle auto chose '(oneshot|train)'.*no option"):
        run_sweep(methods="darts", spaces="s3", oracle="auto", oracle_options={"foo": 1},
                  out=str(tmp_path), dry_run=True)


def test_sweep_file_reports_every_problem_with_a_bad_seed_range(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('methods = ["dartz"]\nspaces = ["s3"]\nseeds = "5-3"\nepochs = 0\n'
                 'w_lr = -1\ncpus_per_run = 0\nexecuter = "local"\n')
    with pytest.raises(SweepError) as info:
        run_sweep(f, dry_run=True)
    text = str(info.value)
    assert "(6 problems)" in text, text
    for part in ("field 'seeds': empty seed range '5-3'", "did you mean 'darts'?",
                 "field 'epochs': expected a positive integer, got 0",
                 "field 'w_lr': expected a finite number >= 0",
                 "field 'cpus_per_run': expected an integer >= 1, got 0",
                 "field 'executer': unknown field", "did you mean 'executor'?"):
        assert part in text, part
    # a command-line value replaces the file's refused one
    with pytest.raises(SweepError) as info:
        run_sweep(f, cpus_per_run=1, dry_run=True)
    assert "field 'cpus_per_run'" not in str(info.value) and "(5 problems)" in str(info.value)
    with pytest.raises(SweepError) as info:  # flags: the executor's problem with the grid's
        run_sweep(methods="darts", spaces="s3", seeds="5-3", executor="ray", workers=2,
                  out=str(tmp_path), dry_run=True)
    assert "empty seed range" in str(info.value) and "workers is only for" in str(info.value)


def test_evaluate_on_a_diverged_run_gives_advice_that_works(tmp_path):
    from nasbench_eval import run

    run_dir = run(method="darts", space="s3", dataset="digits", epochs=1, layers=2, channels=4,
                  batch_size=16, max_steps_per_epoch=1, bn_recalibration_batches=1,
                  out=str(tmp_path / "runs"), progress=False)
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.update(status="diverged", error="non-finite loss in epoch 2 (train_loss=nan)")
    (run_dir / "summary.json").write_text(json.dumps(summary))

    res = invoke("evaluate", str(run_dir))
    assert res.exit_code != 0
    assert "--resume cannot continue a diverged run" in res.output
    assert "run ... --resume" not in res.output
    advice = res.output.split("nasbench-eval evaluate ", 1)[1].split(",")[0].split()
    assert advice[:2] == ["--genotype", str(run_dir / "summary.json")], advice
    res = invoke("evaluate", *advice, "--dataset", "digits", "--epochs", "1", "--layers", "2",
                 "--channels", "4", "--max-steps-per-epoch", "1", "--quiet",
                 "--out", str(tmp_path / "eval"))
    assert res.exit_code == 0, res.output
    assert "status: finished" in res.output

    summary.pop("final_genotype")  # diverged in its first epoch: nothing to evaluate
    (run_dir / "summary.json").write_text(json.dumps(summary))
    res = invoke("evaluate", str(run_dir))
    assert res.exit_code != 0 and "smaller --w-lr or --alpha-lr" in res.output


def test_unknown_name_error_keeps_its_fields():
    from nasbench_eval.errors import UnknownNameError, did_you_mean

    err = UnknownNameError("method", "dartz", ["darts", "msr"])
    assert err.valid == ["darts", "msr"] and str(err).endswith("(did you mean 'darts'?)")
    assert did_you_mean("zzz", ["darts"]) == ""
    assert isinstance(err, NasbenchEvalError)
