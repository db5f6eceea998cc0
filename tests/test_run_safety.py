"""Issue 17: nothing silently wrong, no tracebacks where a message belongs.

Run identity across execution settings, a resume that would compute differently, damaged
metrics.csv rows in every reader, plot counts of runs of different settings, a bad --out, an
unreadable checkpoint, two drivers of one run directory, and genotype errors of evaluate and
query. benchmarks/fault_replay.py replays the process-level faults (SIGKILL, SIGINT,
concurrent drivers, killed sweeps); tests/test_fault_replay.py runs a subset of it.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from nasbench_eval import runner
from nasbench_eval.analysis import load_runs
from nasbench_eval.analysis.plots import make_plots, plot_seeds
from nasbench_eval.analysis.runs import AnalysisError, read_metrics
from nasbench_eval.cli import main
from nasbench_eval.errors import RunDirError
from nasbench_eval.resolve import resolve_config
from nasbench_eval.rundir import RunDirLock
from nasbench_eval.runner import run


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _interrupted(cfg) -> Path:
    """``cfg``'s run stopped by Ctrl-C after its first epoch (status interrupted)."""
    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, on_epoch_end=stop)
    return _run_dir(cfg)


def _run_dir(cfg) -> Path:
    return Path(cfg.out) / resolve_config(cfg).run_id()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 2-epoch run (read only: tests copy it)."""
    from nasbench_eval.config import RunConfig

    out = tmp_path_factory.mktemp("finished")
    cfg = RunConfig(method="darts", space="s3", dataset="digits", seed=0, epochs=2, layers=3,
                    channels=4, batch_size=32, max_steps_per_epoch=3, out=str(out),
                    bn_recalibration_batches=2, progress=False)
    return run(cfg)


def _copy(run_dir: Path, dest: Path) -> Path:
    target = dest / run_dir.name
    shutil.copytree(run_dir, target)
    return target


# ----------------------------------------------------------------------------- run identity

def test_resume_with_other_execution_settings_is_refused(tiny_cfg):
    """A run directory whose record says it computed with other execution settings (a run
    made before issue 17 with --data-loader torch shares the default's id; or a run started
    on another kind of device) is not continued, and the message says what differs."""
    run_dir = _interrupted(tiny_cfg)
    path = run_dir / "config.json"
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "execution": {**doc["execution"],
                                                     "data_loader": "torch"}}))
    with pytest.raises(RunDirError, match=r"data_loader 'torch' -> 'device'.*move the directory"):
        run(tiny_cfg, resume=True)
    path.write_text(json.dumps({**doc, "environment": {**doc["environment"],
                                                       "device": "cuda:0"}}))
    with pytest.raises(RunDirError, match=r"device cuda:0 -> cpu.*--device cuda:0"):
        run(tiny_cfg, resume=True)
    path.write_text(json.dumps(doc))
    run(tiny_cfg, resume=True)  # as it started: continues
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_torch_data_loader_names_another_run_directory(tiny_cfg):
    assert _run_dir(replace(tiny_cfg, data_loader="torch")) != _run_dir(tiny_cfg)


# ----------------------------------------------------------------------------- metrics.csv

def _truncate_last_row(run_dir: Path, keep_newline: bool) -> None:
    path = run_dir / "metrics.csv"
    text = path.read_text()
    body = text.rstrip("\r\n")
    cut = body[: body.rfind(",", 0, body.rfind(",") - 1)]  # the last row loses two fields
    path.write_text(cut + ("\r\n" if keep_newline else ""))


@pytest.mark.parametrize("keep_newline", [False, True])
@pytest.mark.parametrize("metric", ["best", "anytime-at-2", "final"])
def test_a_truncated_metrics_row_is_an_error_or_a_named_skip(finished, tmp_path, metric,
                                                              keep_newline):
    """The issue's case: a finished 2-epoch run whose metrics.csv lost the end of its last row
    gave best 85.00 (summary.json: 0.8333) and anytime-at-2 n = 0, without a word."""
    d = _copy(finished, tmp_path)
    _truncate_last_row(d, keep_newline)
    res = invoke("leaderboard", str(tmp_path), "--metric", metric)
    assert res.exit_code != 0 and "Traceback" not in res.output
    assert f"{d / 'metrics.csv'}, line 3" in res.output
    res = invoke("leaderboard", str(tmp_path), "--metric", metric, "--skip-bad")
    assert "skipped 1 malformed run directory" in res.output and "line 3" in res.output


def test_every_reader_refuses_a_damaged_metrics_row(finished, tmp_path):
    d = _copy(finished, tmp_path)
    path = d / "metrics.csv"
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(",", ",x", 1)  # a non-number in line 2
    path.write_text("".join(lines))
    with pytest.raises(AnalysisError, match=r"metrics\.csv, line 2: column '\w+' holds"):
        read_metrics(d)
    with pytest.raises(AnalysisError, match=r"line 2"):
        load_runs([tmp_path])
    for cmd in (["compare"], ["plot", "--out", str(tmp_path / "p")], ["fidelity", "--out",
                                                                     str(tmp_path / "f")]):
        res = invoke(*cmd, str(tmp_path))
        assert res.exit_code != 0 and "line 2" in res.output, (cmd, res.output)


def test_lost_metrics_rows_are_an_error(finished, tmp_path):
    d = _copy(finished, tmp_path)
    path = d / "metrics.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]))  # header and epoch 0: epoch 1 lost
    with pytest.raises(AnalysisError, match=r"2 epochs done but there is no row for epoch 1"):
        load_runs([tmp_path])


# ----------------------------------------------------------------------------- plot

def test_plot_counts_runs_of_different_settings_as_runs_not_seeds(finished, tmp_path):
    a = _copy(finished, tmp_path / "a")
    b = _copy(finished, tmp_path / "b")
    cfg = json.loads((b / "config.json").read_text())
    cfg["config"]["w_lr"] = 0.05  # another setting, the same method and seed
    (b / "config.json").write_text(json.dumps(cfg))
    summary = json.loads((b / "summary.json").read_text())
    (b / "summary.json").write_text(json.dumps({**summary, "run_id": summary["run_id"] + "x"}))
    runs = load_runs([a, b])
    title = plot_seeds(runs)._suptitle.get_text().replace("\n", " ")
    assert "n = 2 seeds" not in title and "up to 2 runs of 1 seed per method" in title
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_plots(runs, ["seeds"], tmp_path / "plots", formats=["png"])
    assert any("different settings" in str(w.message) and "darts on s3/digits (2 settings)"
               in str(w.message) for w in caught)


# ----------------------------------------------------------------------------- --out

def _no_build(monkeypatch):
    def build(cfg):
        raise AssertionError("data and model must not be built for a bad --out")

    monkeypatch.setattr(runner, "build_search", build)


@pytest.mark.parametrize("where", ["file", "under-file", "proc", "read-only"])
def test_a_bad_out_location_is_a_message_before_any_work(tiny_cfg, tmp_path, monkeypatch, where):
    _no_build(monkeypatch)
    f = tmp_path / "afile"
    f.write_text("x")
    if where == "read-only":
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only directories")
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
    out = {"file": f, "under-file": f / "sub", "proc": Path("/proc/nasbench-eval-out"),
           "read-only": tmp_path / "ro"}[where]
    with pytest.raises(RunDirError, match=r"--out"):
        run(replace(tiny_cfg, out=str(out)))
    res = invoke("run", "--out", str(out), "--epochs", "1", "--quiet")
    assert res.exit_code == 1 and "Traceback" not in res.output and "--out" in res.output


# ----------------------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("damage", ["truncated", "random", "empty"])
def test_an_unreadable_checkpoint_is_kept_aside_with_a_way_on(tiny_cfg, damage):
    run_dir = _interrupted(tiny_cfg)
    ckpt = run_dir / "checkpoint.pt"
    data = ckpt.read_bytes()
    bad = {"truncated": data[: len(data) // 2], "random": os.urandom(4096), "empty": b""}[damage]
    ckpt.write_bytes(bad)
    with pytest.raises(RunDirError, match=r"unreadable.*moved to checkpoint\.pt\.unreadable-"
                                          r".*--resume"):
        run(tiny_cfg, resume=True)
    aside = list(run_dir.glob("checkpoint.pt.unreadable-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == bad and not ckpt.exists()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "unreadable" in summary["error"]
    if damage == "truncated":  # the way on that the message gives: --resume, from epoch 0
        run(tiny_cfg, resume=True)
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_an_empty_checkpoint_is_a_message_on_the_command_line(tmp_path):
    """It printed only ``Aborted!`` (click's word for torch.load's EOFError)."""
    from nasbench_eval.config import RunConfig

    flags = {"--epochs": 2, "--layers": 3, "--channels": 4, "--batch-size": 32,
             "--max-steps-per-epoch": 3, "--out": tmp_path}
    cfg = RunConfig(epochs=2, layers=3, channels=4, batch_size=32, max_steps_per_epoch=3,
                    out=str(tmp_path), progress=False)
    run_dir = _interrupted(cfg)
    (run_dir / "checkpoint.pt").write_bytes(b"")
    res = invoke("run", *[str(x) for kv in flags.items() for x in kv], "--resume", "--quiet")
    assert res.exit_code == 1 and "Aborted" not in res.output
    assert "is unreadable (EOFError" in res.output and "--resume" in res.output


# ----------------------------------------------------------------------------- lock

def test_a_second_driver_of_a_run_directory_is_refused_with_its_holder(tiny_cfg, monkeypatch):
    run_dir = _run_dir(tiny_cfg)
    run_dir.mkdir(parents=True)
    _no_build(monkeypatch)
    with RunDirLock(run_dir):
        with pytest.raises(RunDirError, match=rf"being run by pid {os.getpid()} on host .*"
                                              rf"started 20"):
            run(tiny_cfg)


def test_a_lock_left_by_a_dead_process_is_taken_over(tiny_cfg):
    run_dir = _run_dir(tiny_cfg)
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").write_text(json.dumps({"pid": 999999, "host": "gone",
                                               "started": "2026-01-01T00:00:00+00:00"}))
    run(tiny_cfg)  # the OS released the dead holder's lock: this driver takes it
    assert json.loads((run_dir / ".lock").read_text())["pid"] == os.getpid()


# ----------------------------------------------------------------------------- genotypes

_PAIRS = [["skip_connect", 0], ["skip_connect", 1]] * 4
_S3 = {"normal": _PAIRS, "normal_concat": [2, 3, 4, 5], "reduce": _PAIRS,
       "reduce_concat": [2, 3, 4, 5]}


def test_genotype_errors_of_evaluate_and_query_are_messages(tmp_path):
    no_reduce = {k: v for k, v in _S3.items() if not k.startswith("reduce")}
    res = invoke("evaluate", "--genotype", json.dumps(no_reduce), "--out", str(tmp_path))
    assert res.exit_code == 1 and "missing fields 'reduce', 'reduce_concat'" in res.output
    res = invoke("query", "--space", "s3", "--genotype", "{}")
    assert res.exit_code == 1 and "missing fields 'normal'" in res.output
    res = invoke("query", "--space", "s3", "--genotype", json.dumps(_S3))
    assert res.exit_code == 1 and "do not map to NAS-Bench-101" in res.output
    assert "Traceback" not in res.output
