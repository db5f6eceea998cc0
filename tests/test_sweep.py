"""Sweeps: the grid, its validation, the local and Ray executors, resumption after a kill."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types

import pytest
from click.testing import CliRunner

from nasbench_eval import sweep as sweep_mod
from nasbench_eval.config import RunConfig
from nasbench_eval.resolve import resolve_config
from nasbench_eval.rundir import read_summary
from nasbench_eval.sweep import LocalExecutor, SweepError, load_sweep_file, parse_seeds, run_sweep
from nasbench_eval.cli import main as cli_main
from helpers import read_metrics as metrics

# a search small enough for a test (about a second a run; train_portion 0.9 keeps the
# full search-val pass of every epoch short)
TINY = dict(layers=3, channels=4, batch_size=16, max_steps_per_epoch=2,
            bn_recalibration_batches=1, train_portion=0.9)
TINY_ARGS = ["--layers", "3", "--channels", "4", "--batch-size", "16", "--max-steps-per-epoch", "2",
             "--train-portion", "0.9", "-s", "bn_recalibration_batches=1", "--cpus-per-run", "1"]
GRID = dict(methods="darts,sdarts-rs", spaces="s2,s3", datasets="digits", seeds="0-1", epochs=1)



def expected_run_ids(methods, spaces, seeds, epochs, out, **settings) -> list[str]:
    return [resolve_config(RunConfig(method=m, space=s, dataset="digits", seed=seed, epochs=epochs,
                                     out=str(out), **{**TINY, **settings})).run_id()
            for m in methods for s in spaces for seed in seeds]


def invoke(*args: str):
    return CliRunner().invoke(cli_main, ["sweep", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The 2 methods x 2 spaces x 2 seeds grid on digits, 1 epoch, local executor (CPU)."""
    out = tmp_path_factory.mktemp("local") / "results"
    res = invoke("--methods", GRID["methods"], "--spaces", GRID["spaces"], "--datasets", "digits",
                 "--seeds", GRID["seeds"], "--epochs", "1", *TINY_ARGS, "--out", out)
    assert res.exit_code == 0, res.output
    return out, res.output


def test_parse_seeds():
    assert parse_seeds("0-9") == list(range(10))
    assert parse_seeds("0,2,5") == [0, 2, 5] and parse_seeds("3") == [3] and parse_seeds(4) == [4]
    assert parse_seeds("0-2, 7, 1") == [0, 1, 2, 7] and parse_seeds([1, "3-4"]) == [1, 3, 4]
    for bad, message in (("5-3", "empty seed range '5-3'"), ("", "no seeds"),
                         ("1,x", "'x' is not a seed"), ("-1", "'-1' is not a seed"),
                         ([], "no seeds")):
        with pytest.raises(SweepError, match=message):
            parse_seeds(bad)


def test_local_sweep_runs_the_grid_and_indexes_it(local_sweep):
    out, output = local_sweep
    ids = expected_run_ids(["darts", "sdarts-rs"], ["s2", "s3"], [0, 1], 1, out)
    # --oracle auto on digits DARTS cells is the train oracle: its cache sits beside the runs
    assert sorted(p.name for p in out.iterdir()) == sorted(ids + ["sweeps", "oracle-cache"])
    for run_id in ids:
        summary = json.loads((out / run_id / "summary.json").read_text())
        assert summary["status"] == "finished" and len(metrics(out / run_id)) == 1
    [index_file] = (out / "sweeps").glob("*.json")
    index = json.loads(index_file.read_text())
    assert index["sweep_id"] == index_file.stem and index["sweep_id"].startswith("sweep-")
    assert index["created"] and index["updated"] and index["counts"] == {"finished": 8}
    assert [c["run_id"] for c in index["cells"]] == ids  # grid order: seeds innermost
    assert all(c["path"] == str(out / c["run_id"]) and c["attempts"] == 1 and c["error"] is None
               for c in index["cells"])
    assert "[8/8]" in output and "8 runs: 8 finished" in output  # progress lines, summary

    # rerunning the same sweep is a no-op: every run is skipped, nothing is rewritten
    before = {i: (out / i / "metrics.csv").stat().st_mtime_ns for i in ids}
    res = invoke("--methods", GRID["methods"], "--spaces", GRID["spaces"], "--seeds", "0-1",
                 "--epochs", "1", *TINY_ARGS, "--out", out)
    assert res.exit_code == 0, res.output
    assert "8 of 8 runs already done" in res.output and "[1/8]" not in res.output
    assert before == {i: (out / i / "metrics.csv").stat().st_mtime_ns for i in ids}
    index = json.loads(index_file.read_text())
    assert len(index["invocations"]) == 2 and all(c["attempts"] == 1 for c in index["cells"])


def test_ray_sweep_gives_the_same_run_ids_and_metrics(local_sweep, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nasbench-eval[ray]')")
    local_out, _ = local_sweep
    out = tmp_path / "results"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        index = run_sweep(**GRID, **TINY, out=out, executor="ray", cpus_per_run=1, quiet=True)
    finally:
        ray.shutdown()
    assert index["counts"] == {"finished": 8}
    ids = sorted(p.name for p in out.iterdir() if p.name not in ("sweeps", "oracle-cache"))
    assert ids == sorted(p.name for p in local_out.iterdir()
                         if p.name not in ("sweeps", "oracle-cache"))
    for run_id in ids:
        assert metrics(out / run_id) == metrics(local_out / run_id), run_id
        assert ((out / run_id / "genotypes.jsonl").read_text()
                == (local_out / run_id / "genotypes.jsonl").read_text())
        env = json.loads((out / run_id / "config.json").read_text())["environment"]
        assert env["threads"] == 1  # the task runs torch with the one CPU Ray gave it
    local_index = json.loads(next((local_out / "sweeps").glob("*.json")).read_text())
    assert index["sweep_id"] == local_index["sweep_id"]  # the same grid names the same sweep


def test_worker_process_pool_gives_the_same_metrics(local_sweep, tmp_path):
    """The GPU path of the local executor (a worker process per device), with one worker whose
    CUDA_VISIBLE_DEVICES hides every GPU, so it runs on this CPU."""
    local_out, _ = local_sweep
    out = tmp_path / "results"
    index = run_sweep(methods="darts", spaces="s3", seeds="1", epochs=1, **TINY, out=out,
                      executor=LocalExecutor(gpu_ids=[""], cpus_per_run=1, poll_s=0.1), quiet=True)
    [cell] = index["cells"]
    assert cell["status"] == "finished", cell
    assert metrics(out / cell["run_id"]) == metrics(local_out / cell["run_id"])


def test_cpu_workers_run_cells_side_by_side_with_the_same_metrics(local_sweep, tmp_path):
    """``workers=2``: two worker processes of one thread each (the CPU parallelism of small
    searches), the same run ids and metrics as the sequential executor."""
    local_out, _ = local_sweep
    out = tmp_path / "results"
    res = invoke("--methods", "darts", "--spaces", "s2,s3", "--datasets", "digits", "--seeds",
                 "0", "--epochs", "1", *TINY_ARGS, "--workers", "2", "--out", out)
    assert res.exit_code == 0, res.output
    index = json.loads(next((out / "sweeps").glob("*.json")).read_text())
    assert [c["status"] for c in index["cells"]] == ["finished", "finished"]
    for cell in index["cells"]:
        assert metrics(out / cell["run_id"]) == metrics(local_out / cell["run_id"])
        env = json.loads((out / cell["run_id"] / "config.json").read_text())["environment"]
        assert env["threads"] == 1
    ex = LocalExecutor(workers=3)
    assert ex.cpus_per_run == 1 and ex.workers == 3
    with pytest.raises(SweepError, match="workers is for CPU sweeps"):
        LocalExecutor(gpus=1, workers=2)
    res = invoke("--methods", "darts", "--spaces", "s2", "--workers", "0", "--out", out)
    assert res.exit_code != 0 and "--workers: expected an integer >= 1" in res.output


def test_fidelity_study_file_expands_to_the_papers_grid():
    """studies/fidelity.toml (issue #10): 3 methods x S2, S3 x 10 seeds on digits, the
    CPU setting it documents, run two at a time."""
    spec, executor = load_sweep_file(os.path.join(os.path.dirname(__file__), "..", "studies",
                                                  "fidelity.toml"))
    assert spec.methods == ["darts", "sdarts-rs", "sdarts-adv"]
    assert spec.spaces == ["s2", "s3"] and spec.datasets == ["digits"]
    assert spec.seeds == list(range(10))
    assert executor == {"executor": "local", "workers": 2, "cpus_per_run": 1}
    cells = sweep_mod.validate(spec)
    assert len(cells) == 60
    cfgs = [c.config for c in cells]
    assert {(c.method, c.space, c.seed) for c in cfgs} == {
        (m, s, k) for m in spec.methods for s in spec.spaces for k in range(10)}
    c = cfgs[0]
    assert (c.layers, c.channels, c.batch_size, c.epochs, c.hessian_every) == (3, 8, 16, 8, 2)
    assert c.alpha_lr == 3e-3 and c.oracle == "oneshot"
    assert len({c.run_id() for c in cfgs}) == 60
    # the second setting: DARTS vs SDARTS-ADV on S3, longer, larger w lr, smaller train split
    spec, _ = load_sweep_file(os.path.join(os.path.dirname(__file__), "..", "studies",
                                           "fidelity-mechanism.toml"))
    cells = sweep_mod.validate(spec)
    assert len(cells) == 10 and {c.config.method for c in cells} == {"darts", "sdarts-adv"}
    c = cells[0].config
    assert (c.epochs, c.w_lr, c.train_portion, c.space) == (40, 0.1, 0.3, "s3")


def test_killed_sweep_resumes_every_run_exactly_once(tmp_path):
    out = tmp_path / "results"
    # train_portion 0.5: epochs long enough (a second) to kill the sweep inside the second run
    args = ["--methods", "darts", "--spaces", "s2", "--seeds", "0-1", "--epochs", "3", *TINY_ARGS,
            "--train-portion", "0.5", "--out", str(out), "--quiet"]
    first, second = (out / i for i in expected_run_ids(["darts"], ["s2"], [0, 1], 3, out,
                                                        train_portion=0.5))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nasbench_eval.cli", "sweep", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 120
        while True:  # kill when run 1 is finished and run 2 has checkpointed an epoch, not all
            s1 = read_summary(first, unreadable_ok=True) or {}
            s2 = read_summary(second, unreadable_ok=True) or {}
            if (s1.get("status") == "finished" and (second / "checkpoint.pt").exists()
                    and 1 <= (s2.get("epochs_done") or 0) < 3):
                proc.send_signal(signal.SIGKILL)
                break
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "the sweep did not reach the kill point"
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    killed_at = json.loads((second / "summary.json").read_text())
    assert killed_at["status"] == "running"  # SIGKILL: nothing could mark it interrupted
    first_mtime = (first / "metrics.csv").stat().st_mtime_ns

    res = invoke(*args[:-1])  # the same command again, with its progress lines
    assert res.exit_code == 0, res.output
    assert "1 of 2 runs already done" in res.output and "resuming after epoch" in res.output
    assert sorted(p.name for p in out.iterdir()) == sorted([first.name, second.name, "sweeps"])
    for run_dir in (first, second):
        rows = metrics(run_dir)
        assert [r["epoch"] for r in rows] == ["0", "1", "2"]  # every epoch once
        assert len((run_dir / "genotypes.jsonl").read_text().splitlines()) == 3
        assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert (first / "metrics.csv").stat().st_mtime_ns == first_mtime  # skipped, not rerun
    assert "resumed" not in json.loads((first / "config.json").read_text())
    resumed = json.loads((second / "config.json").read_text())["resumed"]
    assert [r["at_epoch"] for r in resumed] == [killed_at["epochs_done"]]
    index = json.loads(next((out / "sweeps").glob("*.json")).read_text())
    assert [(c["status"], c["attempts"]) for c in index["cells"]] == [("finished", 1),
                                                                     ("finished", 2)]


@pytest.mark.parametrize("args, message", [
    (["--methods", "darts,dartz", "--spaces", "s2"], "unknown method 'dartz'; valid choices: darts"),
    (["--methods", "darts", "--spaces", "s2,s9"], "unknown space 's9'; valid choices:"),
    (["--methods", "darts", "--spaces", "s2", "--datasets", "digits,mnist"],
     "unknown dataset 'mnist'; valid choices: cifar10"),
    (["--methods", "darts", "--spaces", "s2", "--seeds", "9-3"], "--seeds: empty seed range '9-3'"),
    (["--methods", "darts,msr", "--spaces", "s1,s2"], "method 'msr' does not apply to space 's1'"),
    (["--methods", "msr", "--spaces", "s2", "--pgd-steps", "2"],  # darts has it since issue 18
     "option 'pgd_steps' belongs to no method of this sweep"),
    (["--methods", "darts", "--spaces", "s2", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["--methods", "darts", "--spaces", "s2", "-s", "layer=3"], "--set layer: unknown setting"),
    (["--spaces", "s2"], "--methods a,b"),
    (["--methods", "darts", "--spaces", "s2", "--executor", "local", "--ray-address", "auto"],
     "--ray-address is only for --executor ray"),
])
def test_bad_grids_fail_before_anything_runs(tmp_path, args, message):
    out = tmp_path / "results"
    res = invoke("--epochs", "1", *TINY_ARGS, "--out", out, *args)  # the later flag wins
    assert res.exit_code != 0 and message in res.output, res.output
    assert not out.exists()  # no run directory, no index


def test_all_problems_are_reported_at_once(tmp_path):
    res = invoke("--methods", "dartz,msr", "--spaces", "s1,s7", "--out", tmp_path / "r")
    assert res.exit_code != 0
    assert "3 problems" in res.output and "'dartz'" in res.output and "'s7'" in res.output
    assert "'msr' does not apply to space 's1'" in res.output and not (tmp_path / "r").exists()


def test_sweep_file_with_cli_overrides_and_dry_run(tmp_path):
    out = tmp_path / "results"
    f = tmp_path / "study.toml"
    f.write_text(f'name = "study"\nmethods = ["darts", "sdarts-adv"]\nspaces = "s2,s3"\n'
                 f'datasets = ["digits"]\nseeds = "0-4"\nepochs = 2\nlayers = 3\nchannels = 4\n'
                 f'out = "{out}"\n[options]\npgd_steps = 1\n')
    spec, executor = load_sweep_file(f)
    assert spec.methods == ["darts", "sdarts-adv"] and spec.seeds == [0, 1, 2, 3, 4]
    assert spec.settings == {"epochs": 2, "layers": 3, "channels": 4} and executor == {}

    res = invoke(f, "--seeds", "0,7", "--dry-run")  # flags override the file
    assert res.exit_code == 0, res.output
    assert "2 methods x 2 spaces x 1 dataset x 2 seeds = 8 runs" in res.output
    assert "study-" in res.output and "would run 8, resume 0, skip 0" in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip().endswith(" run")]
    assert len(lines) == 8 and "sdarts-adv-s3-digits-seed7-" in res.output
    assert not out.exists()  # a dry run creates nothing
    # the option goes to the method that has it only: darts keeps the run id it has without it
    darts_id = resolve_config(RunConfig(method="darts", space="s2", seed=0, epochs=2, layers=3,
                                        channels=4)).run_id()
    adv_plain = resolve_config(RunConfig(method="sdarts-adv", space="s2", seed=0, epochs=2,
                                         layers=3, channels=4)).run_id()
    assert darts_id in res.output and adv_plain not in res.output

    for text, message in (('methods = ["darts"]\nspaces = ["s2"]\nepoch = 3\n',
                           "field 'epoch': unknown field"),
                          ('methods = ["darts"]\nspaces = ["s2"]\nlayers = "three"\n',
                           "field 'layers': expected an integer"),
                          ('methods = "darts"\nspaces = ["s2"]\nseeds = "4-2"\n',
                           "field 'seeds': empty seed range"),
                          ('methods = ["darts"]\nspaces = ["s2"]\nexecutor = "pbs"\n',
                           "field 'executor': unknown executor 'pbs'"),
                          ('spaces = ["s2"]\n', "field 'methods': missing")):
        f.write_text(text)
        res = invoke(f, "--out", out)
        assert res.exit_code != 0 and f"{f}: " in res.output and message in res.output, res.output
    assert not out.exists()


def test_yaml_sweep_file(tmp_path):
    pytest.importorskip("yaml", reason="PyYAML is not installed (YAML sweep files are optional)")
    f = tmp_path / "study.yaml"
    f.write_text("methods: [darts]\nspaces: s2,s3\nseeds: 0-2\nepochs: 1\n")
    res = invoke(f, "--out", tmp_path / "results", "--dry-run")
    assert res.exit_code == 0 and "1 method x 2 spaces x 1 dataset x 3 seeds = 6 runs" in res.output


def test_missing_ray_is_a_clear_error_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    res = invoke("--methods", "darts", "--spaces", "s2", "--executor", "ray",
                 "--out", tmp_path / "results")
    assert res.exit_code != 0 and "pip install 'nasbench-eval[ray]'" in res.output, res.output
    assert not (tmp_path / "results").exists()


def test_failed_and_diverged_runs_are_recorded_and_the_others_go_on(tmp_path, monkeypatch):
    import nasbench_eval.runner as runner

    real_run = runner.run

    def flaky(cfg, **kw):
        if cfg.seed == 1:
            raise RuntimeError("boom")
        return real_run(cfg, **kw)

    monkeypatch.setattr(runner, "run", flaky)
    out = tmp_path / "results"
    grid = dict(methods="darts", spaces="s2", seeds="0-1", epochs=1, **TINY, out=out)
    stream = _Capture()
    monkeypatch.setitem(sys.modules, "nasbench_eval.analysis", None)  # the plain-table fallback
    index = run_sweep(**grid, stream=stream)
    ok, bad = index["cells"]
    assert ok["status"] == "finished" and bad["status"] == "failed"
    assert bad["error"] == "RuntimeError: boom" and "Traceback" in bad["traceback"]
    assert "method  space  dataset  seed  status    final_test_error" in stream.text
    assert "failed: " + bad["run_id"] + ": RuntimeError: boom" in stream.text

    monkeypatch.setattr(runner, "run", real_run)  # the rerun retries the failed run only
    index = run_sweep(**grid, quiet=True, stream=_Capture())
    assert [(c["status"], c["attempts"]) for c in index["cells"]] == [("finished", 1),
                                                                     ("finished", 2)]
    assert index["cells"][1]["error"] is None

    # a diverging run is a result (status diverged, with the reason), not a failure
    index = run_sweep(methods="darts", spaces="s2", seeds="0", epochs=1, **{**TINY, "w_lr": 1e30},
                      out=out, quiet=True, stream=_Capture())
    [cell] = index["cells"]
    assert cell["status"] == "diverged" and "non-finite loss" in cell["error"]


def test_summary_uses_the_analysis_leaderboard_when_present(tmp_path, monkeypatch):
    calls = {}
    fake = types.ModuleType("nasbench_eval.analysis")
    fake.load_runs = lambda paths: calls.setdefault("paths", list(paths))
    fake.leaderboard = lambda runs, metric="final": calls.setdefault("metric", metric)
    fake.format_leaderboard = lambda table: "LEADERBOARD"
    monkeypatch.setitem(sys.modules, "nasbench_eval.analysis", fake)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text("{}")
    cell = {"run_id": "r", "method": "darts", "space": "s2", "dataset": "digits", "seed": 0,
            "status": "finished", "final_test_error": 0.5, "path": str(tmp_path / "r"),
            "error": None}
    doc = {"sweep_id": "s-1", "out": str(tmp_path), "size": 2, "counts": {"finished": 1, "failed": 1},
           "cells": [cell, {**cell, "run_id": "q", "status": "failed", "error": "E: x",
                            "path": str(tmp_path / "q")}]}
    stream = _Capture()
    sweep_mod.print_summary(doc, stream)
    assert "LEADERBOARD" in stream.text and "final_test_error" not in stream.text
    assert calls == {"paths": [str(tmp_path / "r")], "metric": "final"}  # finished runs only
    assert "failed: q: E: x" in stream.text and "2 runs: 1 finished, 1 failed" in stream.text

    fake.leaderboard = lambda runs, metric="final": 1 / 0  # a broken analysis: fall back
    stream = _Capture()
    sweep_mod.print_summary(doc, stream)
    assert "leaderboard unavailable: ZeroDivisionError" in stream.text
    assert "final_test_error" in stream.text


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


# ----------------------------------------------------------------------------- the sweep package

def test_toml_sweep_files_load_with_tomli_where_tomllib_is_missing(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: the sweep file is read with the tomli backport."""
    tomli = pytest.importorskip("tomli", reason="tomli is not installed (pip install tomli)")
    from nasbench_eval.sweep.spec import toml_module

    f = tmp_path / "study.toml"
    f.write_text('methods = ["darts"]\nspaces = "s2,s3"\nseeds = "0-2"\n[options]\nhvp_r = 0.1\n')
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` raises ImportError
    assert toml_module() is tomli
    spec, _ = load_sweep_file(f)
    assert spec.spaces == ["s2", "s3"] and spec.seeds == [0, 1, 2]
    assert spec.options == {"hvp_r": 0.1}
    f.write_text("methods = [\n")
    with pytest.raises(SweepError, match="not valid TOML"):
        load_sweep_file(f)
    monkeypatch.setitem(sys.modules, "tomli", None)
    with pytest.raises(SweepError, match="pip install tomli"):
        load_sweep_file(f)


def test_a_bad_seed_range_does_not_hide_the_other_problems(tmp_path):
    res = invoke("--methods", "dartz", "--spaces", "s2", "--seeds", "9-3", "--out", tmp_path / "r")
    assert res.exit_code != 0 and "2 problems" in res.output, res.output
    assert "--seeds: empty seed range '9-3'" in res.output and "'dartz'" in res.output
    f = tmp_path / "study.toml"
    f.write_text('methods = ["darts"]\nspaces = ["s9"]\nseeds = "4-2"\nepoch = 3\nname = 5\n')
    res = invoke(f, "--out", tmp_path / "r")
    assert res.exit_code != 0 and "4 problems" in res.output, res.output
    for message in ("field 'epoch': unknown field", "field 'seeds': empty seed range",
                    "field 'name': expected a string", "unknown space 's9'"):
        assert message in res.output, message
    assert not (tmp_path / "r").exists()


def test_method_options_are_checked_by_each_methods_schema(tmp_path):
    res = invoke("--methods", "darts,sdarts-adv,sdarts-rs", "--spaces", "s2", "-o",
                 "pgd_steps=x", "-o", "eps_min=big", "--out", tmp_path / "r")
    assert res.exit_code != 0 and "2 problems" in res.output, res.output
    assert "--option: option 'pgd_steps': --pgd-steps: expected an integer >= 1, got 'x'" in res.output
    # eps_min is an option of two methods of the grid: reported once
    assert res.output.count("option 'eps_min'") == 1
    spec = sweep_mod.SweepSpec.create(methods="darts,sdarts-adv", spaces="s2",
                                      options={"pgd_steps": 2.0, "hvp_r": 0.5}, epochs=1)
    with pytest.raises(SweepError, match="option 'hvp_r' belongs to no method"):
        sweep_mod.validate(spec)
    spec.options = {"pgd_steps": 2.0}
    darts, adv = sweep_mod.validate(spec)
    assert darts.config.method_options == {}  # darts has no pgd_steps: its run id is unchanged
    assert adv.config.method_options == {"pgd_steps": 2}  # parsed by the schema (an int)


def test_executors_are_a_registry():
    from nasbench_eval.sweep import EXECUTORS, make_executor

    assert EXECUTORS.names() == ["local", "ray", "slurm"]
    assert isinstance(make_executor("local", workers=2), LocalExecutor)
    with pytest.raises(SweepError, match="unknown executor 'pbs'; valid choices: local, ray, "
                                         "slurm"):
        make_executor("pbs")
    with pytest.raises(SweepError, match="workers is only for --executor local"):
        make_executor("ray", workers=2)


def test_sweep_id_is_todays():
    # 3e5e372: "<name>-" + sha1 of the sorted run ids joined by newlines, 8 digits
    cells = [types.SimpleNamespace(run_id=r) for r in ("b-run", "a-run")]
    assert sweep_mod.sweep_id(types.SimpleNamespace(name="s"), cells) == "s-606627c4"


def test_a_damaged_summary_does_not_stop_the_sweep_index(tmp_path):
    from nasbench_eval.sweep import SweepIndex, SweepSpec, validate

    spec = SweepSpec(methods=["darts"], spaces=["s2"], datasets=["digits"], seeds=[0],
                     out=str(tmp_path), settings={"epochs": 1})
    cells = validate(spec)
    cells[0].path.mkdir(parents=True)
    (cells[0].path / "summary.json").write_text("{")  # not JSON
    index = SweepIndex.open(spec, sweep_mod.sweep_id(spec, cells), cells)
    assert index.cell(cells[0])["status"] == "pending"
    index.save()
    assert [p.name for p in index.path.parent.iterdir()] == [index.path.name]  # no .tmp left
    assert json.loads(index.path.read_text())["counts"] == {"pending": 1}
