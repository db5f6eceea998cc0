"""A space family defined in one folder outside the package, through the command line as a
user types it: ``nasbench-eval --plugin FOLDER run --space FOLDER/spec.toml`` and
``nasbench-eval --plugin FOLDER evaluate RUN_DIR`` (no file of the package edited)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nasbench_eval.registry import PLUGINS_ENV

ROOT = Path(__file__).resolve().parents[1]
CHAIN = ROOT / "tests" / "fixtures" / "families" / "chain"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != PLUGINS_ENV}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "nasbench_eval.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_plugin_family_runs_and_evaluates_through_the_cli(tmp_path):
    plugin = ["--plugin", str(CHAIN)]
    p = _cli([*plugin, "run", "--method", "sdarts-rs", "--space", str(CHAIN / "chain.toml"),
              "--dataset", "digits", "--epochs", "2", "--layers", "2", "--channels", "4",
              "--batch-size", "16", "--max-steps-per-epoch", "2", "--quiet",
              "--out", str(tmp_path / "r")], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    (run_dir,) = (tmp_path / "r").iterdir()
    assert run_dir.name.startswith("sdarts-rs-chain-digits-seed0-")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    e = _cli([*plugin, "evaluate", str(run_dir), "--epochs", "1", "--batch-size", "16",
              "--max-steps-per-epoch", "2", "--quiet"], tmp_path)
    assert e.returncode == 0, e.stdout + e.stderr
    doc = json.loads((run_dir / "evaluation.json").read_text())
    assert doc["status"] == "finished" and doc["family"] == "chain-cell"
    # without the plugin the family is unknown, and the message says which families exist
    bad = _cli(["run", "--space", str(CHAIN / "chain.toml"), "--out", str(tmp_path / "x")],
               tmp_path)
    assert bad.returncode != 0 and "chain-cell" in bad.stderr and "darts-cell" in bad.stderr
    assert "Traceback" not in bad.stderr
