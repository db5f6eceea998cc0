"""A subset of benchmarks/fault_replay.py (issue 17): a SIGKILL inside a checkpoint write,
then --resume, and four drivers of one run directory started at once; the resumed run must
equal the uninterrupted one, with no traceback and nothing lost. The whole replay (eight
cases, ~3 min of one core) is ``python benchmarks/fault_replay.py``. Here the runs' train
oracle (``--oracle auto`` on S3/digits) trains each architecture for one epoch instead of
three (0.7 s instead of 1.9 s an architecture, results/oracle-fidelity/report.md): its
cache and scores still go through the kill and the resume."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "fault_replay.py"


def test_kill_inside_a_checkpoint_write_and_concurrent_drivers(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("fault_replay", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "SETTINGS", [*mod.SETTINGS, "--oracle-option", "train_epochs=1"])
    doc = mod.main(["--cases", "kill-checkpoint-write,concurrent", "--work", str(tmp_path)])
    assert [c["name"] for c in doc["cases"]] == ["kill-checkpoint-write", "concurrent"]
    assert doc["totals"] == {"tracebacks": 0, "silent_wrong": 0, "data_loss": 0}, doc["cases"]
