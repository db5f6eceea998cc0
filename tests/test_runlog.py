"""run.log (issue 19): every run directory holds what the console showed, the warnings and,
for a failed run, the traceback; also for runs in sweep worker processes."""
from __future__ import annotations

import json
import logging
import warnings

import pytest

from nasbench_eval import runner
from nasbench_eval.config import RunConfig
from nasbench_eval.data import DATASETS
from nasbench_eval.registry import PLUGINS_ENV, load_plugins
from nasbench_eval.runlog import RunLog
from nasbench_eval.sweep import run_sweep

TINY = dict(method="darts", space="s3", dataset="digits", epochs=2, layers=2, channels=4,
            batch_size=16, max_steps_per_epoch=2, bn_recalibration_batches=1, progress=False)


def test_run_log_holds_the_console_lines_even_when_quiet(tmp_path):
    d = runner.run(RunConfig(**TINY, out=str(tmp_path)))
    log = (d / "run.log").read_text()
    assert f"run {d.name} (pid" in log
    assert "epoch 1/2  train_acc" in log and "epoch 2/2  train_acc" in log
    assert "status: finished  epochs: 2/2" in log


def test_run_log_holds_the_traceback_of_a_failed_run(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("the oracle broke")

    monkeypatch.setattr(runner.Search, "oracle_context", boom)
    with pytest.raises(RuntimeError, match="the oracle broke"):
        runner.run(RunConfig(**TINY, out=str(tmp_path)))
    (d,) = tmp_path.iterdir()
    log = (d / "run.log").read_text()
    assert "ERROR   run failed: RuntimeError: the oracle broke" in log
    assert "Traceback (most recent call last):" in log and "in boom" in log
    assert "status: failed  epochs: 0/2" in log
    assert json.loads((d / "summary.json").read_text())["status"] == "failed"
    # the resume appends its own section to the same file
    monkeypatch.undo()
    runner.run(RunConfig(**TINY, out=str(tmp_path)), resume=True)
    log = (d / "run.log").read_text()
    assert log.count("(pid") == 2 and log.rstrip().endswith("status: finished  epochs: 2/2")


def test_run_log_holds_a_failure_before_the_first_epoch(tmp_path, monkeypatch):
    def no_data(*args, **kwargs):
        raise OSError("dataset server unreachable")

    monkeypatch.setattr(runner, "load_dataset", no_data)
    with pytest.raises(OSError):
        runner.run(RunConfig(**TINY, out=str(tmp_path)))
    (d,) = tmp_path.iterdir()
    log = (d / "run.log").read_text()
    assert "run failed: OSError: dataset server unreachable" in log and "in no_data" in log


def test_run_log_copies_warnings_and_restores_logging(tmp_path):
    package = logging.getLogger("nasbench_eval")
    before = (package.level, package.propagate, list(package.handlers), warnings.showwarning)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        with RunLog(tmp_path, "r"):  # (pytest's summary shows the warning too: it is real)
            warnings.warn("a method's note", UserWarning)
            logging.getLogger("nasbench_eval.methods.x").info("from a module")
    log = (tmp_path / "run.log").read_text()
    assert "WARNING UserWarning: a method's note" in log and "from a module" in log
    assert (package.level, package.propagate, list(package.handlers),
            warnings.showwarning) == before


PLUGIN = '''
from nasbench_eval.data import DATASETS, DatasetEntry

def _load(root, **options):
    raise RuntimeError("no such data on this node")

DATASETS.add("unreadable", DatasetEntry(_load, "a dataset whose loader fails (test)"))
'''


def test_sweep_workers_write_run_logs(tmp_path, monkeypatch):
    """Two worker processes: the failed cell's run.log holds its traceback, the other's its
    epochs; the index says the same."""
    plugin = tmp_path / "unreadable_data.py"
    plugin.write_text(PLUGIN)
    monkeypatch.setenv(PLUGINS_ENV, str(plugin))  # the workers inherit it
    monkeypatch.setattr(DATASETS, "_entries", dict(DATASETS.all()))  # undone after the test
    load_plugins()
    out = tmp_path / "results"
    settings = {k: v for k, v in TINY.items() if k not in ("method", "space", "dataset",
                                                          "progress")}
    doc = run_sweep(None, methods="darts", spaces="s3", datasets="digits,unreadable",
                    seeds="0", workers=2, cpus_per_run=1, quiet=True, out=str(out),
                    **settings)
    by_dataset = {c["run_id"].split("-")[2]: c for c in doc["cells"]}
    assert by_dataset["digits"]["status"] == "finished"
    assert by_dataset["unreadable"]["status"] == "failed"
    ok = (out / by_dataset["digits"]["run_id"] / "run.log").read_text()
    bad = (out / by_dataset["unreadable"]["run_id"] / "run.log").read_text()
    assert "epoch 2/2" in ok and "status: finished" in ok
    assert "RuntimeError: no such data on this node" in bad and "Traceback" in bad
