from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.errors import RunDirError
from nasbench_eval.methods.darts import Darts
from nasbench_eval.resolve import resolve_config
from helpers import read_metrics


def test_run_writes_the_run_directory(tiny_cfg):
    run_dir = run(tiny_cfg)
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.json", "metrics.csv", "genotypes.jsonl", "checkpoint.pt", "summary.json"}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["seed"] == 0 and config["config"]["method"] == "darts"
    assert {"git_commit", "torch", "device"} <= set(config["environment"])
    rows = read_metrics(run_dir)
    assert len(rows) == 2
    for col in ("train_loss", "train_acc", "val_loss", "val_acc", "anytime_test_error",
                "param_free_normal", "lr"):
        assert col in rows[0]
    assert 0.0 <= float(rows[-1]["anytime_test_error"]) <= 1.0
    genotypes = [json.loads(line) for line in (run_dir / "genotypes.jsonl").read_text().splitlines()]
    assert [g["epoch"] for g in genotypes] == [0, 1] and len(genotypes[0]["genotype"]["normal"]) == 8
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    assert summary["final_genotype"] == genotypes[-1]["genotype"]


def test_same_seed_same_run_id_and_metrics(tiny_cfg, tmp_path):
    a = run(tiny_cfg)
    b = run(replace(tiny_cfg, out=str(tmp_path / "other")))
    assert a.name == b.name
    assert read_metrics(a) == read_metrics(b)
    c = run(replace(tiny_cfg, seed=1))
    assert c.name != a.name and read_metrics(c) != read_metrics(a)


@pytest.mark.parametrize("method", ["darts", "darts-2nd"])
def test_resume_gives_the_same_metrics(tiny_cfg, tmp_path, method):
    # s4: the noise op draws randoms; train_portion 0.9: short search-val passes
    cfg = replace(tiny_cfg, method=method, epochs=3, space="s4", train_portion=0.9)
    reference = run(replace(cfg, out=str(tmp_path / "straight")))

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, on_epoch_end=interrupt)
    run_dir = tmp_path / "results" / reference.name
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert len(read_metrics(run_dir)) == 2
    with pytest.raises(RunDirError, match="--resume"):
        run(cfg)
    run(cfg, resume=True)
    assert read_metrics(run_dir) == read_metrics(reference)
    assert (run_dir / "genotypes.jsonl").read_text() == (reference / "genotypes.jsonl").read_text()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["resumed"][0]["at_epoch"] == 2


def test_resume_of_finished_run_is_a_no_op(tiny_cfg):
    run_dir = run(tiny_cfg)
    before = (run_dir / "metrics.csv").read_text()
    assert run(tiny_cfg, resume=True) == run_dir
    assert (run_dir / "metrics.csv").read_text() == before


def test_nan_loss_ends_run_as_diverged(tiny_cfg, monkeypatch):
    original = Darts.step

    def poisoned(self, train_batch, val_batch):
        out = original(self, train_batch, val_batch)
        with torch.no_grad():  # a blow-up in the weights, as a too-large lr would cause
            next(self.supernet.parameters()).fill_(float("nan"))
        return out

    monkeypatch.setattr(Darts, "step", poisoned)
    run_dir = run(replace(tiny_cfg, epochs=3))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["diverged_at_epoch"] == 0 and "non-finite" in summary["error"]
    assert not (run_dir / "checkpoint.pt").exists()  # no poisoned checkpoint is written


def test_huge_learning_rate_diverges_without_crashing(tiny_cfg):
    run_dir = run(replace(tiny_cfg, w_lr=1e30, w_lr_min=1e29, grad_clip=1e30, epochs=3))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "diverged"


def test_python_api_overrides(tmp_path):
    run_dir = run(method="darts", space="s2", dataset="synthetic", epochs=1, layers=3,
                  channels=4, batch_size=16, max_steps_per_epoch=2, out=str(tmp_path),
                  bn_recalibration_batches=1, progress=False)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_a_method_can_stop_the_search_early(tiny_cfg, monkeypatch):
    original = Darts.end_epoch

    def stop_at_one(self, epoch):
        out = original(self, epoch)
        if epoch == 1:
            out["stop_reason"] = "planted stop"
        return out

    monkeypatch.setattr(Darts, "end_epoch", stop_at_one)
    run_dir = run(replace(tiny_cfg, epochs=4))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 2
    assert summary["stopped_early_at_epoch"] == 1 and summary["stop_reason"] == "planted stop"
    assert "stop_reason" not in read_metrics(run_dir)[0]
    assert run(replace(tiny_cfg, epochs=4), resume=True) == run_dir  # finished: nothing to do


def test_an_exception_is_recorded_as_failed_and_resume_retries(tiny_cfg, monkeypatch):
    original = Darts.end_epoch

    def broken(self, epoch):
        if epoch == 1:
            raise RuntimeError("out of memory (planted)")
        return original(self, epoch)

    monkeypatch.setattr(Darts, "end_epoch", broken)
    with pytest.raises(RuntimeError):
        run(replace(tiny_cfg, epochs=3))
    (run_dir,) = Path(tiny_cfg.out).iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "out of memory (planted)" in summary["error"]
    monkeypatch.setattr(Darts, "end_epoch", original)
    run(replace(tiny_cfg, epochs=3), resume=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 3


def test_config_resolution_happens_once_outside_the_config(tmp_path):
    """RunConfig is plain data (no method/oracle/space import); resolve_config fills the open
    settings from the method's defaults, the global ones and the oracle auto rule."""
    open_cfg = RunConfig(method="msr", space="s3")
    assert (open_cfg.batch_size, open_cfg.train_portion, open_cfg.oracle) == (None, None, "auto")
    cfg = resolve_config(open_cfg)
    # issue 22: on DARTS cells with digits auto takes the measured choice, the train oracle
    assert (cfg.batch_size, cfg.train_portion, cfg.oracle) == (128, 0.8, "train")
    assert resolve_config(cfg) == cfg
    assert resolve_config(RunConfig(method="darts", batch_size=8)).batch_size == 8
    assert resolve_config(RunConfig(method="darts")).train_portion == 0.5

    pkg = Path(__file__).parents[1] / "nasbench_eval"
    code = ("import sys, types; p = types.ModuleType('nasbench_eval'); "
            f"p.__path__ = [{str(pkg)!r}]; sys.modules['nasbench_eval'] = p; "
            "import nasbench_eval.config; "
            "print(sorted(m for m in sys.modules if m.startswith('nasbench_eval.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['nasbench_eval.config', 'nasbench_eval.errors', " \
                                 "'nasbench_eval.rundir']"
