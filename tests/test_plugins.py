"""Methods defined in one file outside the package run like the built-in ones.

The fixtures in tests/fixtures/plugins use only the public API (a base class, ``register``,
``Option``, the supernet seam) and are found through ``NASBENCH_EVAL_PLUGINS``: one changes
the mixing (softmax(alpha / T)), one changes how an edge computes (only the strongest
candidate in the w step). Both run end to end through ``nasbench_eval.run`` and the CLI,
with their options validated like any other method's.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import read_metrics

from nasbench_eval import RunConfig, run
from nasbench_eval.methods import create_method, method_class
from nasbench_eval.options import Option, OptionError
from nasbench_eval.registry import PLUGINS_ENV, load_plugins
from nasbench_eval.spaces import load_space
from nasbench_eval.spaces.darts.supernet import DartsSupernet

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = Path(__file__).resolve().parent / "fixtures" / "plugins"
PLUGIN_PATH = os.pathsep.join(str(PLUGINS / f) for f in ("toy_mixing.py", "toy_edge.py"))
TINY = dict(space="s3", dataset="digits", epochs=1, layers=3, channels=4, batch_size=16,
            max_steps_per_epoch=2, bn_recalibration_batches=1, progress=False)


@pytest.fixture
def plugins(monkeypatch):
    """The two toy methods, as a user would make them known (registries load the variable)."""
    monkeypatch.setenv(PLUGINS_ENV, PLUGIN_PATH)
    load_plugins()


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_plugins_are_registered_with_typed_options(plugins):
    mixing, edge = method_class("toy-mixing"), method_class("toy-edge")
    assert isinstance(mixing.options["toy_temperature"], Option)
    assert mixing.options["toy_temperature"].default == 1.0
    assert edge.options["toy_edge_scale"].help
    assert mixing.description().startswith("TOY-MIXING:")


def test_toy_mixing_runs_and_mixes_with_the_temperature(plugins, tmp_path):
    d = run(method="toy-mixing", method_options={"toy_temperature": "2"}, out=str(tmp_path), **TINY)
    assert _summary(d)["status"] == "finished"
    # the defining behaviour: the supernet mixes with softmax(alpha / T), not softmax(alpha)
    sp = load_space("s3")
    cfg = RunConfig(method="toy-mixing", space="s3", method_options={"toy_temperature": 2.0},
                    alpha_init_scale=1.0)
    m = create_method("toy-mixing")
    m.setup(DartsSupernet(sp, channels=4, layers=3, in_channels=1), sp, cfg, steps_per_epoch=1)
    w = m.mixing_weights()
    for k, a in m.alphas.items():
        assert torch.allclose(w[k], F.softmax(a.detach() / 2.0, dim=-1))
        assert not torch.allclose(w[k], F.softmax(a.detach(), dim=-1))


def test_bad_plugin_option_names_the_flag(plugins, tmp_path):
    with pytest.raises(OptionError, match="--toy-temperature"):
        run(method="toy-mixing", method_options={"toy_temperature": 0}, out=str(tmp_path), **TINY)
    with pytest.raises(OptionError, match="has no option --toy-temperature"):
        run(method="toy-edge", method_options={"toy_temperature": 2}, out=str(tmp_path), **TINY)


def test_toy_edge_computes_edges_through_the_seam(plugins, tmp_path):
    d = run(method="toy-edge", out=str(tmp_path / "edge"), **TINY)
    assert _summary(d)["status"] == "finished"
    rows = read_metrics(d)
    # every mixed edge of every cell went through the plugin's edge forward in each w step
    # (the fused cells stepped aside: fused_edges is on by default)
    assert int(rows[0]["toy_edge_calls"]) == 2 * 3 * 14
    darts = read_metrics(run(method="darts", out=str(tmp_path / "darts"), **TINY))
    assert rows[0]["train_loss"] != darts[0]["train_loss"]  # a different computation


def _cli(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, PLUGINS_ENV: PLUGIN_PATH, "PYTHONPATH": str(ROOT),
           "OMP_NUM_THREADS": "1"}
    code = "from nasbench_eval.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def test_plugin_method_through_the_cli_with_its_flag(tmp_path):
    tiny = ["--space", "s3", "--dataset", "digits", "--epochs", "1", "--layers", "3",
            "--channels", "4", "--batch-size", "16", "--max-steps-per-epoch", "2", "--quiet",
            "--out", str(tmp_path / "r")]
    p = _cli(["run", "--method", "toy-mixing", "--toy-temperature", "2", *tiny], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    (run_dir,) = [d for d in (tmp_path / "r").iterdir() if d.name != "oracle-cache"]
    cfg = json.loads((run_dir / "config.json").read_text())["config"]
    assert cfg["method"] == "toy-mixing" and cfg["method_options"] == {"toy_temperature": 2.0}
    bad = _cli(["run", "--method", "toy-mixing", "--toy-temperature", "-1", *tiny], tmp_path)
    assert bad.returncode != 0 and "--toy-temperature" in bad.stdout + bad.stderr


def test_plugin_methods_in_a_sweep_with_their_flags(tmp_path):
    p = _cli(["sweep", "--methods", "toy-mixing,toy-edge", "--spaces", "s3", "--datasets",
              "digits", "--seeds", "0", "--epochs", "1", "--layers", "3", "--channels", "4",
              "--batch-size", "16", "--max-steps-per-epoch", "2", "--toy-temperature", "2",
              "--out", str(tmp_path / "r")], tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    runs = {d.name.split("-s3-")[0]: d for d in (tmp_path / "r").iterdir()
            if d.name not in ("sweeps", "oracle-cache")}
    assert set(runs) == {"toy-mixing", "toy-edge"}
    for name, d in runs.items():
        assert _summary(d)["status"] == "finished"
        opts = json.loads((d / "config.json").read_text())["config"]["method_options"]
        assert opts == ({"toy_temperature": 2.0} if name == "toy-mixing" else {})
