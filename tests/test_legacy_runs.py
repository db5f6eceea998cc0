"""Runs written before issue 16 keep their run ids; where the computation behind an unchanged
id changed, resuming them is refused with the reason, never continued silently; the analysis
groups them with new runs of the same setting."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from nasbench_eval import run
from nasbench_eval.analysis.runs import setting_hash
from nasbench_eval.config import RunConfig
from nasbench_eval.errors import RunDirError
from nasbench_eval.resolve import legacy_resume_conflict, resolve_config

FIXTURES = Path(__file__).parent / "fixtures" / "rundirs-3e5e372"
OLD_DARTS = "darts-s3-digits-seed0-9aff27c6"  # interrupted after epoch 1 of 2
TINY = dict(space="s3", dataset="digits", epochs=2, layers=3, channels=4, batch_size=16,
            max_steps_per_epoch=3, progress=False)


def _old_config() -> dict:
    return json.loads((FIXTURES / OLD_DARTS / "config.json").read_text())["config"]


def test_an_old_run_with_a_changed_computation_is_refused_not_resumed(tmp_path):
    cfg = resolve_config(RunConfig(method="darts", out=str(tmp_path), hessian_every=1, **TINY))
    run_dir = tmp_path / cfg.run_id()
    shutil.copytree(FIXTURES / OLD_DARTS, run_dir)  # as the old version left it, ...
    doc = json.loads((run_dir / "config.json").read_text())
    doc["config"]["hessian_every"] = 1  # ... had it been started with --hessian-every 1
    (run_dir / "config.json").write_text(json.dumps(doc))
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with pytest.raises(RunDirError, match="earlier version.*lambda_max"):
        run(cfg, resume=True)
    # nothing of the run touched (the lock file of the refused driver and run.log's record
    # of the refusal are the only additions)
    after = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.name not in (".lock", "run.log")}
    assert after == before


def test_which_old_runs_conflict():
    old = _old_config()
    cfg = RunConfig(method="darts", **TINY)
    assert legacy_resume_conflict(old, cfg) is None  # plain darts: resumes (test_rundir_compat)
    assert "cosine-power" in legacy_resume_conflict({**old, "lr_schedule": "cosine-power"}, cfg)
    es = {**old, "method": "darts-es", "method_options": {"es_hessian": "power"}}
    assert "power" in legacy_resume_conflict(es, replace(cfg, method="darts-es"))
    msr = {**old, "method": "msr", "method_options": {"msr_mixing": "stable-rank"}}
    assert "stable-rank" in legacy_resume_conflict(msr, replace(cfg, method="msr"))
    new = {**old, "lr_warmup": 0, "hessian_every": 1}  # written by this version: no conflict
    assert legacy_resume_conflict(new, cfg) is None


def test_old_and_new_configs_of_one_setting_group_together():
    old = _old_config()
    new = {**old, "lr_warmup": 0, "hessian_weight_decay": True}
    assert setting_hash(old) == setting_hash(new)
    assert setting_hash({**new, "hessian_weight_decay": False}) != setting_hash(old)


def test_method_options_are_canonical_before_the_run_id():
    a = resolve_config(RunConfig(method="msr", method_options={"msr-coeff": "2"}))
    b = resolve_config(RunConfig(method="msr", method_options={"msr_coeff": 2}))
    assert a.method_options == b.method_options and a.run_id() == b.run_id()
    c = resolve_config(RunConfig(method="msr", method_options={"msr-mixing": "fixed"}))
    assert c.method_options == {"msr_mixing": "fixed"}  # the user's choice, not the pinned default


def test_a_chosen_schedule_does_not_inherit_maxws_warmup():
    c = resolve_config(RunConfig(method="maxw", lr_schedule="cosine"))
    assert (c.lr_schedule, c.lr_warmup, c.w_lr_min) == ("cosine", 0, 0.001)
    d = resolve_config(RunConfig(method="maxw"))
    assert (d.lr_schedule, d.lr_warmup, d.w_lr_min) == ("cosine-power", 5, 1e-4)
