"""The run-directory module: ids that never change, atomic writes that survive concurrent
writers, the summary's layout, and the lifecycle (resume, divergence, interruption)."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from nasbench_eval import rundir
from nasbench_eval.config import RunConfig
from nasbench_eval.errors import RunDirError
from nasbench_eval.rundir import (DIVERGED, DONE, FAILED, FINISHED, INTERRUPTED, RUNNING,
                                  STATUSES, RunRecorder, atomic_write, derived_seed, fingerprint,
                                  read_summary, refuse_existing, save_checkpoint, write_metrics,
                                  write_summary)

# computed at commit 3e5e372 (before the redesign) with RunConfig(**kw).fingerprint()
OLD_FINGERPRINTS = [
    ({}, "3c684f13"),
    (dict(method="msr", space="s2", seed=3, batch_size=128, train_portion=0.8, oracle="oneshot"),
     "6e03d370"),
    (dict(method="sdarts-adv", space="nb1shot1-3", oracle="train",
          method_options={"pgd_steps": 7}, epochs=3), "8aabf59f"),
]


@pytest.mark.parametrize("kw,expected", OLD_FINGERPRINTS)
def test_run_fingerprints_are_todays(kw, expected):
    # since issue 16 the w schedule is left open (None) until resolve_config fills the
    # method's defaults; at 3e5e372 these were always cosine / 0.001 and no warm-up existed
    cfg = RunConfig(lr_schedule="cosine", w_lr_min=0.001, lr_warmup=0, **kw)
    assert cfg.fingerprint() == expected
    assert cfg.run_id().endswith("-" + expected)
    d = {k: v for k, v in cfg.to_dict().items() if k not in ("out", "device", "progress",
         "data_root", "memory_format", "precision", "data_loader", "compile", "cuda_graphs",
         "fused_edges", "lr_warmup", "hessian_weight_decay", "log_to", "mlflow_uri",
         "oracle_every")}  # fields added later (execution, or out of the id at their default)
    assert fingerprint(d) == expected


def test_text_fingerprint_is_the_sweep_ids_digest():
    # sweep.sweep_id at 3e5e372: sha1 of the sorted run ids joined by newlines, 8 digits
    assert fingerprint("\n".join(sorted(["b-run", "a-run"]))) == "606627c4"
    assert len(fingerprint({"a": 1}, n=12)) == 12


def test_derived_seeds_are_todays():
    assert [derived_seed(0, -1, "init"), derived_seed(3, 2, "train"), derived_seed(7, 10, "val"),
            derived_seed(1, 0, "torch")] == [6569863346532939967, 3594337932452182391,
                                             4627006930543625145, 7965927831114826719]


def test_status_constants():
    assert (RUNNING, FINISHED, DIVERGED, INTERRUPTED, FAILED) == (
        "running", "finished", "diverged", "interrupted", "failed")
    assert set(DONE) == {"finished", "diverged"} and set(DONE) < set(STATUSES)
    assert rundir.RUN_FILES == ("config.json", "metrics.csv", "genotypes.jsonl",
                                "checkpoint.pt", "summary.json")


def test_concurrent_writers_never_share_a_temporary_file(tmp_path):
    """Two writers of one file (a sweep driver and its worker, say): every write lands whole,
    none fails for a temporary file the other already moved, none is left behind."""
    target = tmp_path / "summary.json"
    errors: list[BaseException] = []

    def writer(tag: str) -> None:
        try:
            for i in range(200):
                atomic_write(target, json.dumps({"writer": tag, "i": i}) + "\n")
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads(target.read_text())["i"] == 199
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_concurrent_processes_write_checkpoints_and_metrics(tmp_path):
    code = ("import sys; from nasbench_eval.rundir import save_checkpoint, write_metrics\n"
            "for i in range(30):\n"
            "    save_checkpoint(sys.argv[1] + '/checkpoint.pt', {'i': i})\n"
            "    write_metrics(sys.argv[1] + '/metrics.csv', [{'epoch': i}])\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert torch.load(tmp_path / "checkpoint.pt")["i"] == 29
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.csv"]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    save_checkpoint(target, {"epoch": 1})
    with pytest.raises(Exception):
        save_checkpoint(target, {"bad": lambda: None})  # lambdas do not pickle
    assert torch.load(target)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_summary_round_trip_keeps_key_order(tmp_path):
    doc = {"run_id": "x", "status": "running", "final_test_error": None, "nested": {"b": 1, "a": 2}}
    write_summary(tmp_path, doc)
    assert read_summary(tmp_path) == doc
    assert list(read_summary(tmp_path)) == list(doc)
    assert (tmp_path / "summary.json").read_text() == json.dumps(doc, indent=2) + "\n"
    assert read_summary(tmp_path / "nothing") is None



def test_a_damaged_summary_is_an_error_unless_unreadable_ok(tmp_path):
    (tmp_path / "summary.json").write_text('{"status": "runn')  # e.g. a disk that filled up
    with pytest.raises(ValueError):
        read_summary(tmp_path)
    assert read_summary(tmp_path, unreadable_ok=True) is None  # the sweep's reading
    assert read_summary(tmp_path / "nothing", unreadable_ok=True) is None

def test_metrics_columns_in_order_of_first_appearance(tmp_path):
    write_metrics(tmp_path / "m.csv", [{"epoch": 0, "b": 1}, {"epoch": 1, "a": 2, "b": 3}])
    with (tmp_path / "m.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["epoch", "b", "a"], ["0", "1", ""], ["1", "3", "2"]]
    write_metrics(tmp_path / "empty.csv", [])
    assert not (tmp_path / "empty.csv").exists()


def _recorder(tmp_path: Path, fp: str | None = None) -> RunRecorder:
    summary = {"run_id": "r", "method": "m"}

    def summarize(history):
        return {"final_loss": history[-1]["train_loss"] if history else None}

    return RunRecorder(tmp_path / "summary.json", tmp_path / "metrics.csv",
                       tmp_path / "checkpoint.pt", summary, summarize, fingerprint=fp)


def test_recorder_epochs_resume_and_layout(tmp_path):
    rec = _recorder(tmp_path, fp="abc")
    rec.finish(RUNNING)
    for epoch in range(2):
        rec.wall += 1.25
        rec.record_epoch({"epoch": epoch, "train_loss": 1.0 / (epoch + 1)},
                         {"model": {"w": torch.ones(2) * epoch}}, files={"notes.txt": f"{epoch}\n"})
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert list(summary) == ["run_id", "method", "status", "epochs_done", "wall_time_s",
                             "final_loss"]
    assert summary["status"] == "running" and summary["epochs_done"] == 2
    assert summary["wall_time_s"] == 2.5 and summary["final_loss"] == 0.5
    assert (tmp_path / "notes.txt").read_text() == "1\n"

    again = _recorder(tmp_path, fp="abc")
    state = again.restore(torch.device("cpu"))
    assert again.start_epoch == 2 and again.wall == 2.5 and len(again.history) == 2
    assert torch.equal(state["model"]["w"], torch.ones(2))
    assert state["fingerprint"] == "abc"
    with pytest.raises(RunDirError, match="belongs to another run"):
        _recorder(tmp_path, fp="other").restore(torch.device("cpu"))
    assert _recorder(tmp_path / "none").restore(torch.device("cpu")) is None


def test_recorder_divergence_interrupt_and_failure(tmp_path):
    rec = _recorder(tmp_path)
    assert not rec.diverged({"epoch": 0, "train_loss": 1.0}, 0, elapsed=3.0)
    assert rec.wall == 0.0
    assert rec.diverged({"epoch": 0, "train_loss": float("nan"), "val_acc": 0.1}, 0, elapsed=3.0)
    s = read_summary(tmp_path)
    assert s["status"] == DIVERGED and s["diverged_at_epoch"] == 0 and s["wall_time_s"] == 3.0
    assert s["error"] == "non-finite loss in epoch 0: train_loss=nan"

    with pytest.raises(KeyboardInterrupt), rec.guard():
        raise KeyboardInterrupt
    assert read_summary(tmp_path)["status"] == INTERRUPTED
    with pytest.raises(ValueError), rec.guard():
        raise ValueError("boom")
    assert read_summary(tmp_path)["status"] == FAILED
    assert read_summary(tmp_path)["error"] == "ValueError: boom"
    rec.finish(RUNNING)
    with pytest.raises(ValueError), rec.guard(record_failures=False):
        raise ValueError("boom")
    assert read_summary(tmp_path)["status"] == RUNNING
    with pytest.raises(ValueError, match="unknown run status"):
        rec.finish("done")


def test_an_existing_run_needs_resume(tmp_path):
    assert refuse_existing(tmp_path / "summary.json", resume=False) is None
    write_summary(tmp_path, {"status": "interrupted"})
    with pytest.raises(RunDirError, match="--resume"):
        refuse_existing(tmp_path / "summary.json", resume=False)
    assert refuse_existing(tmp_path / "summary.json", resume=True) == {"status": "interrupted"}
    assert rundir.is_done({"status": "diverged"}) and not rundir.is_done({"status": "failed"})


def test_rundir_does_not_import_torch():
    """The analysis reads run directories on machines without torch."""
    pkg = Path(rundir.__file__).parent
    code = ("import sys, types; p = types.ModuleType('nasbench_eval'); "
            f"p.__path__ = [{str(pkg)!r}]; sys.modules['nasbench_eval'] = p; "
            "import nasbench_eval.rundir as r; r.fingerprint({'a': 1}); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
