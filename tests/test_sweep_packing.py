"""``sweep --pack K`` (issue 20): the seeds of each setting run K at a time as one packed
search, writing the run directories, ids and files of the unpacked sweep.

As in tests/test_packing.py, "the same" is checked in float64 (the runs here execute with
torch's default dtype set to float64: parameters, alphas and normalised batches are float64),
where a packed group equals the separate runs to rounding; float32 sums in another order.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from nasbench_eval.cli import main as cli_main
from nasbench_eval.sweep import LocalExecutor, run_sweep
from helpers import read_metrics

TINY = dict(layers=3, channels=4, batch_size=16, max_steps_per_epoch=2,
            bn_recalibration_batches=1, train_portion=0.9, oracle="oneshot", device="cpu")
GRID = dict(methods="darts,sdarts-rs", spaces="s3", datasets="digits", seeds="0-2", epochs=2)


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    """The reference: the 2 methods x 3 seeds grid, unpacked, in float64."""
    out = tmp_path_factory.mktemp("unpacked") / "results"
    torch.set_default_dtype(torch.float64)
    try:
        index = run_sweep(**GRID, **TINY, out=out, quiet=True, summary=False)
    finally:
        torch.set_default_dtype(torch.float32)
    assert index["counts"] == {"finished": 6}
    return out, index


def _close(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return x == y or (math.isfinite(x) and abs(x - y) <= 1e-9 * max(1.0, abs(x)))


def assert_same_run(packed_dir, ref_dir) -> None:
    """The same metrics (float64: within 1e-9), genotypes and configuration."""
    rows, ref = read_metrics(packed_dir), read_metrics(ref_dir)
    assert [r.keys() for r in rows] == [r.keys() for r in ref]
    for r, q in zip(rows, ref):
        bad = {k: (r[k], q[k]) for k in r if not _close(r[k], q[k])}
        assert not bad, (packed_dir.name, r["epoch"], bad)
    assert ((packed_dir / "genotypes.jsonl").read_text()
            == (ref_dir / "genotypes.jsonl").read_text())
    doc, ref_doc = (json.loads((d / "config.json").read_text()) for d in (packed_dir, ref_dir))
    assert doc["run_id"] == ref_doc["run_id"]
    assert {**doc["config"], "out": None} == {**ref_doc["config"], "out": None}
    for name in ("summary.json",):
        s, t = (json.loads((d / name).read_text()) for d in (packed_dir, ref_dir))
        assert s["status"] == t["status"] and s["epochs_done"] == t["epochs_done"]


def test_packed_sweep_equals_the_unpacked_sweep(unpacked, tmp_path, float64):
    ref_out, ref_index = unpacked
    out = tmp_path / "results"
    index = run_sweep(**GRID, **TINY, out=out, pack=2, quiet=True, summary=False)
    # the same grid names the same sweep, cells and run directories
    assert index["sweep_id"] == ref_index["sweep_id"] and index["counts"] == {"finished": 6}
    assert [c["run_id"] for c in index["cells"]] == [c["run_id"] for c in ref_index["cells"]]
    assert all(c["attempts"] == 1 and c["epochs_done"] == 2 for c in index["cells"])
    assert index["invocations"][-1]["pack"] == 2 and index["invocations"][-1]["packs"] == 2
    assert (sorted(p.name for p in out.iterdir())
            == sorted(p.name for p in ref_out.iterdir()))
    for cell in index["cells"]:
        run_dir = out / cell["run_id"]
        assert sorted(p.name for p in run_dir.iterdir()) == sorted(
            p.name for p in (ref_out / cell["run_id"]).iterdir())
        assert_same_run(run_dir, ref_out / cell["run_id"])
        # packing is an execution setting: recorded, never in the run id
        execution = json.loads((run_dir / "config.json").read_text())["execution"]
        assert execution.get("packed_seeds") == ([0, 1] if cell["seed"] < 2 else None)


def test_interrupted_packed_sweep_resumes_nothing_lost_or_repeated(unpacked, tmp_path,
                                                                  float64, monkeypatch):
    """Ctrl-C inside the pack of seeds 0 and 1, after seed 0 recorded its last epoch and
    before seed 1 did: the rerun skips seed 0 and packs seed 1 (resumed at epoch 2) with
    seed 2 (never started); every run equals the uninterrupted unpacked one."""
    from nasbench_eval import runner

    ref_out, _ = unpacked
    out = tmp_path / "results"
    grid = {**GRID, "methods": "darts"}
    real, calls = runner._run_epoch, {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:  # epoch 1 of seed 1 (seed 0's epoch 1 is call 3)
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(runner, "_run_epoch", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(**grid, **TINY, out=out, pack=2, quiet=True, summary=False)
    monkeypatch.setattr(runner, "_run_epoch", real)
    [index_file] = (out / "sweeps").glob("*.json")
    first = json.loads(index_file.read_text())
    assert [c["status"] for c in first["cells"]] == ["finished", "interrupted", "pending"]
    seed0 = out / first["cells"][0]["run_id"]
    mtime = (seed0 / "metrics.csv").stat().st_mtime_ns

    index = run_sweep(**grid, **TINY, out=out, pack=2, quiet=True, summary=False)
    assert [(c["status"], c["attempts"]) for c in index["cells"]] == [
        ("finished", 1), ("finished", 2), ("finished", 1)]
    assert index["invocations"][-1]["skipped"] == 1 and index["invocations"][-1]["packs"] == 1
    assert (seed0 / "metrics.csv").stat().st_mtime_ns == mtime  # skipped, not rerun
    for cell in index["cells"]:
        run_dir = out / cell["run_id"]
        assert [r["epoch"] for r in read_metrics(run_dir)] == ["0", "1"]  # every epoch once
        assert_same_run(run_dir, ref_out / cell["run_id"])
    seed1 = json.loads((out / index["cells"][1]["run_id"] / "config.json").read_text())
    assert seed1["execution"]["packed_seeds"] == [0, 1]
    assert [(r["at_epoch"], r["packed_seeds"]) for r in seed1["resumed"]] == [(1, [1, 2])]


PACK_GRID = {**GRID, "methods": "darts", "seeds": "0-1", "epochs": 1}


@pytest.fixture(scope="module")
def packed_here(tmp_path_factory):
    """The pack of darts seeds 0 and 1 run in this process (float32, one thread)."""
    out = tmp_path_factory.mktemp("here") / "results"
    index = run_sweep(**PACK_GRID, **TINY, out=out, pack=2, cpus_per_run=1, quiet=True,
                      summary=False)
    assert index["counts"] == {"finished": 2}
    return out, index


def _same_as_here(packed_here, out, index) -> None:
    here_out, here = packed_here
    assert index["counts"] == {"finished": 2} and index["invocations"][-1]["packs"] == 1
    for a, b in zip(here["cells"], index["cells"]):
        assert read_metrics(here_out / a["run_id"]) == read_metrics(out / b["run_id"])
        execution = json.loads((out / b["run_id"] / "config.json").read_text())["execution"]
        assert execution["packed_seeds"] == [0, 1]


def test_a_worker_process_runs_a_pack_with_the_in_process_results(packed_here, tmp_path):
    """``--workers 2 --pack 2`` (float32): a worker process runs the pack; its files equal
    the in-process packed sweep's bit for bit (the same packed computation, one thread)."""
    out = tmp_path / "results"
    index = run_sweep(**PACK_GRID, **TINY, out=out, pack=2,
                      executor=LocalExecutor(workers=2, poll_s=0.1), quiet=True, summary=False)
    _same_as_here(packed_here, out, index)


def test_a_ray_task_runs_a_pack_with_the_in_process_results(packed_here, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (nasbench-eval[ray])")
    out = tmp_path / "results"
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        index = run_sweep(**PACK_GRID, **TINY, out=out, pack=2, executor="ray",
                          cpus_per_run=1, quiet=True, summary=False)
    finally:
        ray.shutdown()
    _same_as_here(packed_here, out, index)


def invoke(*args):
    return CliRunner().invoke(cli_main, ["sweep", *(str(a) for a in args)])


TINY_ARGS = ["--layers", "3", "--channels", "4", "--epochs", "1", "--oracle", "oneshot"]


@pytest.mark.parametrize("args, message", [
    (["--pack", "0"], "--pack: expected an integer >= 1, got 0"),
    (["--pack", "2", "--executor", "slurm"],
     "--pack: the slurm executor cannot run packed seeds"),
])
def test_bad_pack_fails_before_anything_runs(tmp_path, args, message):
    out = tmp_path / "results"
    res = invoke("--methods", "darts", "--spaces", "s3", "--seeds", "0-1", *TINY_ARGS,
                 "--out", out, *args)
    assert res.exit_code != 0 and message in res.output, res.output
    assert not out.exists()


def test_pack_in_a_sweep_file(tmp_path):
    out = tmp_path / "results"
    f = tmp_path / "study.toml"
    for value, message in (('"two"', "field 'pack': expected an integer >= 1, got 'two'"),
                           ("true", "field 'pack': expected an integer >= 1, got True")):
        f.write_text(f'methods = ["darts"]\nspaces = ["s3"]\npack = {value}\n')
        res = invoke(f, "--out", out)
        assert res.exit_code != 0 and f"{f}: " in res.output and message in res.output
    f.write_text('methods = ["darts"]\nspaces = ["s3"]\nseeds = "0-2"\npack = 2\n'
                 'executor = "slurm"\n')
    res = invoke(f, "--out", out)
    assert res.exit_code != 0
    assert "field 'pack': the slurm executor cannot run packed seeds" in res.output
    res = invoke(f, "--out", out, "--pack", "1", "--dry-run")  # the flag overrides the file
    assert res.exit_code == 0, res.output
    assert not out.exists()


def test_settings_that_cannot_pack_run_unpacked_with_a_note(tmp_path):
    """A grid mixing a packable and a refused method: darts is packed, msr runs one seed at
    a time, and the sweep says why (dry run: the plan shows it, nothing is created)."""
    out = tmp_path / "results"
    res = invoke("--methods", "darts,msr", "--spaces", "s3", "--seeds", "0-2", *TINY_ARGS,
                 "--pack", "2", "--out", out, "--dry-run")
    assert res.exit_code == 0, res.output
    assert ("--pack 2: 3 runs (msr on s3/digits) run one at a time, unpacked: method 'msr' "
            "cannot run packed") in res.output
    lines = [ln for ln in res.output.splitlines() if "-digits-seed" in ln]
    assert [ln.split()[-1] for ln in lines] == ["0,1)", "0,1)", "run", "run", "run", "run"]
    assert "(packed: seeds 0,1)" in lines[0] and not out.exists()
