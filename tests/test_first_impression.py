"""Issue 17, "the first impression": where a run writes by default, how many threads it takes,
what it prints per epoch, what ``--help`` says, and random-ws's selection phase. Each test
failed on the code before (results/ as the default, torch's own thread count, the epoch time
without the oracle's scoring, undocumented flags, a fixed 1000 architectures screened
silently)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from nasbench_eval.cli import main
from nasbench_eval.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--epochs", "1", "--layers", "2", "--channels", "4", "--batch-size", "16",
        "--max-steps-per-epoch", "1"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def keep_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


# ----------------------------------------------------------------------------- output location

def test_default_output_is_runs_not_the_committed_results():
    from nasbench_eval.config import DEFAULT_OUT
    from nasbench_eval.evaluation import EvalConfig
    from nasbench_eval.sweep import SweepSpec

    assert DEFAULT_OUT == "runs" and RunConfig().out == "runs"
    assert SweepSpec.create(methods="darts", spaces="s3").out == "runs"
    assert EvalConfig().out == "runs"
    assert "runs/" in (ROOT / ".gitignore").read_text().splitlines()


def test_run_writes_into_runs_and_prints_the_whole_epoch_time(tmp_path, monkeypatch,
                                                               keep_threads):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NASBENCH_EVAL_THREADS", "1")
    res = invoke("run", *TINY)
    assert res.exit_code == 0, res.output
    assert [p.name for p in tmp_path.iterdir()] == ["runs"]
    assert not (tmp_path / "results").exists()
    assert "run directory: runs/darts-s3-digits-seed0-" in res.output
    assert "torch CPU threads: 1 ($NASBENCH_EVAL_THREADS; set with --threads N" in res.output
    epoch = next(line for line in res.output.splitlines() if line.startswith("epoch 1/1"))
    total, search, rest = _times(epoch)
    assert total >= search and rest == pytest.approx(total - search, abs=0.11), epoch
    # an explicit old-style --out still works, and the same run lands there
    res = invoke("run", *TINY, "--out", "results/mine", "--quiet")
    assert res.exit_code == 0 and (tmp_path / "results" / "mine").is_dir(), res.output


def _times(line: str) -> tuple[float, float, float]:
    """(epoch, search, scoring + checkpoint) seconds of a printed epoch line."""
    inner = line.rsplit("(", 1)[1].rstrip(")")
    total, parts = inner.split("s: search ")
    search, rest = parts.split("s, scoring + checkpoint ")
    return float(total), float(search), float(rest.rstrip("s"))


# ----------------------------------------------------------------------------- threads

def test_thread_count_is_chosen_and_settable(monkeypatch, keep_threads):
    from nasbench_eval import execution
    from nasbench_eval.errors import NasbenchEvalError

    for var in ("NASBENCH_EVAL_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # torch's default: every core
    assert execution.choose_threads()[0] == 1  # the default, at any load
    assert execution.choose_threads(3) == (3, "--threads")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert execution.choose_threads() == (2, "$OMP_NUM_THREADS")
    monkeypatch.setenv("NASBENCH_EVAL_THREADS", "1")
    assert execution.choose_threads() == (1, "$NASBENCH_EVAL_THREADS")
    monkeypatch.setenv("NASBENCH_EVAL_THREADS", "x")
    with pytest.raises(NasbenchEvalError, match=r"\$NASBENCH_EVAL_THREADS: expected an integer"):
        execution.choose_threads()


def test_threads_flag_is_checked(tmp_path):
    res = invoke("run", "--threads", "0", "--out", str(tmp_path))
    assert res.exit_code != 0 and "--threads" in res.output


# ----------------------------------------------------------------------------- --help

def _squash(text: str) -> str:
    """Help text without white space (click wraps lines, and breaks after hyphens)."""
    return "".join(text.split())


def test_help_describes_every_setting_and_lists_choices():
    run_help = _squash(invoke("run", "--help").output)
    sweep_help = _squash(invoke("sweep", "--help").output)
    for flag, text in (("--epochs", "Search epochs"), ("--seed", "Seed of all randomness"),
                       ("--w-lr", "Initial learning rate of the weights"),
                       ("--alpha-lr", "Learning rate of the architecture parameters"),
                       ("--method", "Search method: darts, darts-2nd"),
                       ("--dataset", "fashion-mnist, svhn"),
                       ("--oracle", "auto, nasbench101, nasbench201"), ("--threads", "Torch CPU")):
        assert _squash(flag) in run_help and _squash(text) in run_help, flag
    alpha = run_help.split("--alpha-lr", 1)[1].split("--lr-schedule", 1)[0]
    assert "[default:3e-4]" in alpha and "0.0003" not in alpha
    assert "[default:3e-4]" in sweep_help and "[default:supernet]" not in sweep_help
    assert "auto,nasbench101,nasbench201" in sweep_help
    assert "--pgd-stepsINTEGER" in run_help and "--pgd-step-sizeFLOAT|none" in run_help
    listing = invoke("list", "--help").output
    for name in ("datasets", "methods", "oracles", "spaces"):
        sub = invoke("list", name, "--help").output.split("Options:")[0]
        assert len(sub.split("\n", 2)[-1].strip()) > 20, name  # a help paragraph
        assert f"  {name} " in listing


# ----------------------------------------------------------------------------- random-ws

def test_random_ws_default_samples_scale_with_the_run():
    from nasbench_eval.methods.random_ws import default_samples

    assert default_samples(50, 390) == 1000  # the papers' 50-epoch CIFAR-10 search
    assert default_samples(100, 390) == 1000
    assert default_samples(1, 11) == 20  # a 1-epoch digits run: 20, not 1000
    assert default_samples(8, 11) == 20 and default_samples(25, 390) == 500


def test_random_ws_run_ids():
    from nasbench_eval.resolve import resolve_config

    def rid(opts):
        return resolve_config(RunConfig(method="random-ws", epochs=1, oracle="oneshot",
                                        method_options=opts)).run_id()  # auto's choice then

    # explicitly given values keep the ids they had (computed on the code before)
    assert rid({"rws_samples": 1000}) == "random-ws-s3-digits-seed0-71351e8e"
    assert rid({"rws_samples": 6}) == "random-ws-s3-digits-seed0-7342710a"
    # the default changed what is computed, so its runs get a new id (was ...-7a921aa9)
    assert rid({}) != "random-ws-s3-digits-seed0-7a921aa9"
    assert resolve_config(RunConfig(method="random-ws", oracle="oneshot")).method_options == {
        "rws_samples": None}


def test_random_ws_selection_shows_progress_and_an_estimate(tmp_path, capsys):
    from nasbench_eval import run

    run_dir = run(method="random-ws", space="s3", dataset="digits", epochs=1, layers=2,
                  channels=4, batch_size=16, max_steps_per_epoch=1, bn_recalibration_batches=1,
                  method_options={"rws_eval_batches": 1, "rws_top": 2},
                  out=str(tmp_path), progress=True)
    err = capsys.readouterr().err
    assert ("random-ws selection after epoch 1: screening 20 architectures on 1 search-val "
            "batches each, then the best 2 on the whole split") in err
    assert "random-ws selection: about" in err and "ms per architecture" in err
    assert (run_dir / "summary.json").exists()
