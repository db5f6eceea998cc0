"""Experiment-tracking sinks (issue 19): TensorBoard's own reader parses the event files, the
MLflow run's metrics equal metrics.csv, and sinks that fail (missing package, unreachable
server, an exception mid-run) warn once each and leave the run's results identical."""
from __future__ import annotations

import csv
import json
import sys
import warnings
from pathlib import Path

import pytest

from nasbench_eval.config import RunConfig
from nasbench_eval.errors import UnknownNameError
from nasbench_eval.runner import run
from nasbench_eval.sinks import SinkWarning

TIMING = {"epoch_time_s", "wall_time_s", "oracle_time_s", "oracle_train_time_s", "oracle_cached"}
TINY = dict(method="darts", space="s3", dataset="digits", oracle="oneshot", epochs=2, layers=2, channels=4,
            batch_size=16, max_steps_per_epoch=2, hessian_every=1, hessian_iters=3,
            bn_recalibration_batches=1, progress=False)


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def _results(run_dir: Path) -> dict:
    """What the run computed: metrics without timings, genotypes, summary without timings."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("wall_time_s")
    return {"metrics": [{k: v for k, v in r.items() if k not in TIMING} for r in _metrics(run_dir)],
            "genotypes": (run_dir / "genotypes.jsonl").read_text(), "summary": summary}


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return run(RunConfig(**TINY, out=str(tmp_path_factory.mktemp("plain"))))


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SinkWarning)  # both sinks must work
        return run(RunConfig(**TINY, out=str(tmp_path_factory.mktemp("tracked")),
                             log_to=["tensorboard", "mlflow"]))


def test_tensorboard_events_parse_with_tensorboards_reader(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tracked / "tensorboard"), size_guidance={"scalars": 0,
                                                                        "images": 0})
    acc.Reload()
    tags = acc.Tags()
    rows = _metrics(tracked)
    for key in ("train_loss", "val_acc", "anytime_test_error", "hessian_eig"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [int(r["epoch"]) for r in rows]
        assert [e.value for e in events] == pytest.approx([float(r[key]) for r in rows],
                                                           rel=1e-6)  # float32 in events
    assert {"arch_weights/normal", "arch_weights/reduce"} <= set(tags["histograms"])
    assert {"arch_weights_heatmap/normal", "arch_weights_heatmap/reduce"} <= set(tags["images"])
    assert len(acc.Images("arch_weights_heatmap/normal")) == len(rows)
    text = acc.Tensors("genotype/text_summary")
    assert len(text) == len(rows) and b"normal[" in text[-1].tensor_proto.string_val[0]


def test_mlflow_run_metrics_equal_metrics_csv(tracked):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(tracked / "mlruns").resolve().as_uri())
    exp = client.get_experiment_by_name("nasbench-eval")
    (found,) = client.search_runs([exp.experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == tracked.name
    rows = _metrics(tracked)
    for key in rows[0]:
        history = sorted(client.get_metric_history(found.info.run_id, key), key=lambda m: m.step)
        assert [(m.step, m.value) for m in history] == [(int(r["epoch"]), float(r[key]))
                                                         for r in rows], key
    assert found.data.params["method"] == "darts" and found.data.params["epochs"] == "2"
    arts = {a.path for a in client.list_artifacts(found.info.run_id)}
    assert {"config.json", "metrics.csv", "genotypes.jsonl", "summary.json", "run.log"} <= arts
    assert "checkpoint.pt" not in arts


def test_sinks_leave_results_identical(plain, tracked):
    assert _results(tracked) == _results(plain)
    assert json.loads((tracked / "config.json").read_text())["run_id"] == plain.name


def test_failing_sinks_warn_once_and_change_nothing(plain, tmp_path, monkeypatch):
    """Mid-run: TensorBoard raises at its second epoch; MLflow's server is unreachable."""
    from nasbench_eval.sinks.tensorboard_sink import TensorBoardSink

    calls = []

    def broken(self, record):
        calls.append(record.epoch)
        if record.epoch >= 1:
            raise OSError("disk full")

    monkeypatch.setattr(TensorBoardSink, "log_epoch", broken)
    with pytest.warns(SinkWarning) as caught:
        d = run(RunConfig(**TINY, out=str(tmp_path), log_to="tensorboard,mlflow",
                          mlflow_uri="http://127.0.0.1:9"))
    messages = [str(w.message) for w in caught if w.category is SinkWarning]
    assert len(messages) == 2, messages
    assert any("tensorboard" in m and "disk full" in m for m in messages)
    assert any("mlflow" in m and "could not start" in m for m in messages)
    assert calls == [0, 1]  # dropped after its failure, never called again
    assert _results(d) == _results(plain)
    log = (d / "run.log").read_text()
    assert "SinkWarning" in log and "disk full" in log


def test_missing_packages_warn_and_change_nothing(plain, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")] + ["mlflow"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.warns(SinkWarning) as caught:
        d = run(RunConfig(**TINY, out=str(tmp_path), log_to=["tensorboard", "mlflow"]))
    messages = [str(w.message) for w in caught if w.category is SinkWarning]
    assert len(messages) == 2 and all("not installed" in m for m in messages), messages
    assert _results(d) == _results(plain)
    assert not (d / "tensorboard").exists() and not (d / "mlruns").exists()


def test_log_to_is_an_execution_setting_and_checked():
    a, b = RunConfig(**TINY), RunConfig(**TINY, log_to="tensorboard, mlflow", mlflow_uri="x")
    assert b.log_to == ["tensorboard", "mlflow"] and a.run_id() == b.run_id()
    from nasbench_eval.resolve import resolve_config

    with pytest.raises(UnknownNameError, match="unknown sink 'tensorbord'.*valid choices: "
                                               "mlflow, tensorboard"):
        resolve_config(RunConfig(**TINY, log_to="tensorbord"))
    with pytest.raises(ValueError, match="log_to"):
        RunConfig(**TINY, log_to=3)


def test_a_resumed_run_continues_its_mlflow_run_and_event_files(plain, tmp_path):
    """Interrupted after epoch 0, resumed: one MLflow run with every epoch once, and the
    TensorBoard scalars of both epochs; results as without interruption or sinks."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = RunConfig(**TINY, out=str(tmp_path), log_to=["mlflow", "tensorboard"])

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, on_epoch_end=stop)
    d = run(cfg, resume=True)
    assert _results(d) == _results(plain)
    client = MlflowClient(tracking_uri=(d / "mlruns").resolve().as_uri())
    (found,) = client.search_runs([client.get_experiment_by_name("nasbench-eval").experiment_id])
    assert found.info.status == "FINISHED"
    rows = _metrics(d)
    history = client.get_metric_history(found.info.run_id, "val_acc")
    assert sorted((m.step, m.value) for m in history) == [(int(r["epoch"]), float(r["val_acc"]))
                                                           for r in rows]
    acc = EventAccumulator(str(d / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("val_acc")] == [0, 1]


def test_the_analysis_skips_an_mlflow_store_under_the_results(tracked, tmp_path):
    import shutil

    from nasbench_eval.analysis import find_run_dirs

    out = tmp_path / "results"
    shutil.copytree(tracked, out / tracked.name)
    artifacts = out / "mlruns" / "1" / "abc" / "artifacts"  # a shared store's artifact copy
    shutil.copytree(tracked, artifacts, ignore=shutil.ignore_patterns("mlruns", "tensorboard"))
    assert find_run_dirs(out) == [out / tracked.name]


def test_a_sweep_checks_its_sinks_before_anything_runs(tmp_path):
    from nasbench_eval.sweep import SweepError, run_sweep

    with pytest.raises(SweepError, match="log-to: unknown sink 'tensorbord'"):
        run_sweep(None, methods="darts", spaces="s3", log_to="tensorbord", dry_run=True,
                  quiet=True, out=str(tmp_path), origins={"log_to": "--log-to"})
    assert not any(tmp_path.iterdir())
