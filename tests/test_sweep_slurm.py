"""The SLURM executor against a real one-node SLURM cluster started by the test (munged,
slurmctld, slurmd; see slurm_cluster.py), skipped with the reason where that cannot start
(not root, slurm-wlm/munge or submitit not installed). The option parsing and the
resubmission logic without a cluster are in test_sweep_slurm_options.py."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import slurm_cluster
from helpers import read_metrics
from nasbench_eval.cli import main as cli_main
from nasbench_eval.sweep import SweepSpec, load_sweep_file, validate

ROOT = Path(__file__).resolve().parent.parent
# one run long enough (about a second an epoch) to be signalled and killed between epochs
KILL_GRID = ["--methods", "darts", "--spaces", "s3", "--seeds", "0", "--epochs", "8",
             "--layers", "3", "--channels", "4", "--batch-size", "16",
             "--max-steps-per-epoch", "4", "--train-portion", "0.5",
             "-s", "bn_recalibration_batches=1", "--cpus-per-run", "1"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = slurm_cluster.why_not()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("submitit", reason="submitit is not installed (pip install "
                                           "'nasbench-eval[slurm]')")
    try:
        c = slurm_cluster.start(tmp_path_factory.mktemp("slurm"))
    except slurm_cluster.ClusterError as exc:
        pytest.skip(str(exc))
    yield c
    c.stop()


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    """SLURM commands of this process (the sweep's driver) and of its jobs (sbatch exports
    the environment) reach the test cluster; each job runs one torch thread."""
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return cluster


def _index(out: Path) -> dict:
    [path] = (out / "sweeps").glob("*.json")
    return json.loads(path.read_text())


def _logs(out: Path) -> str:
    logs = sorted((out / "sweeps" / "slurm").glob("*_log.*"))
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in logs)


def test_smoke_sweep_runs_to_the_end_on_slurm(on_cluster, tmp_path):
    out = tmp_path / "results"
    res = CliRunner().invoke(cli_main, ["sweep", str(ROOT / "studies" / "smoke.toml"),
                                        "--executor", "slurm", "--out", str(out),
                                        "--slurm-poll-s", "0.5", "--slurm-time", "30"])
    assert res.exit_code == 0, res.output + _logs(out)
    spec, _ = load_sweep_file(ROOT / "studies" / "smoke.toml")
    spec.out = str(out)
    ids = [c.run_id for c in validate(spec)]
    index = _index(out)
    assert [c["run_id"] for c in index["cells"]] == ids  # the runs' own deterministic ids
    assert index["counts"] == {"finished": 8}, res.output
    # one job array: task i of array A ran cell i
    jobs = [c["job_ids"] for c in index["cells"]]
    array = jobs[0][0].split("_")[0]
    assert jobs == [[f"{array}_{i}"] for i in range(8)]
    assert index["invocations"][-1]["executor"] == "slurm"
    assert "8 runs: 8 finished" in res.output


def _wait(what: str, check, proc: subprocess.Popen, out: Path, timeout_s: float = 180):
    deadline = time.time() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"gave up waiting for {what}:\n"
                                 f"{proc.stdout.read() if proc.stdout else ''}\n{_logs(out)}")
        time.sleep(0.05)


def test_a_signalled_and_a_killed_job_resume_from_the_checkpoint(on_cluster, tmp_path):
    """SLURM's warning signal (a time limit or a preemption): submitit requeues the same job;
    scancel (a hard kill): the driver resubmits a new job. Each resumes the run from its
    last finished epoch, and the run's metrics equal an uninterrupted run's."""
    out, ref = tmp_path / "results", tmp_path / "reference"
    spec = SweepSpec.create(methods="darts", spaces="s3", seeds="0", epochs=8, layers=3,
                            channels=4, batch_size=16, max_steps_per_epoch=4,
                            train_portion=0.5, bn_recalibration_batches=1, out=str(out))
    [cell] = validate(spec)
    run_dir = out / cell.run_id
    proc = subprocess.Popen(
        [sys.executable, "-m", "nasbench_eval.cli", "sweep", *KILL_GRID, "--out", str(out),
         "--executor", "slurm", "--slurm-jobs", "per-run", "--slurm-poll-s", "0.3",
         "--slurm-time", "60"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        cwd=ROOT)

    def epochs() -> int:
        try:
            return json.loads((run_dir / "summary.json").read_text()).get("epochs_done") or 0
        except (OSError, ValueError):
            return 0

    def state(job: str) -> str:
        return on_cluster.run("squeue", "--noheader", "--states=all", f"--jobs={job}",
                              "--format=%T", check=False).strip()

    try:
        _wait("the first epoch", lambda: epochs() >= 1, proc, out)
        [job] = _index(out)["cells"][0]["job_ids"]
        on_cluster.run("scancel", "--signal=USR2", job)  # what SLURM sends before the end
        _wait("submitit's requeue", lambda: state(job) == "PENDING", proc, out)
        at_requeue = epochs()
        # a requeued job waits ~2 minutes before it may start again: let it start now
        on_cluster.run("scontrol", "update", f"JobId={job}", "StartTime=now")
        _wait("an epoch of the requeued job", lambda: epochs() > at_requeue, proc, out)
        assert epochs() < 8, "the run ended before it could be killed: lengthen its epochs"
        on_cluster.run("scancel", job)  # a hard kill: no requeue, the driver resubmits
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output + _logs(out)
    entry = _index(out)["cells"][0]
    assert entry["status"] == "finished" and entry["epochs_done"] == 8, output
    assert len(entry["job_ids"]) == 2 and entry["job_ids"][0] == job, entry["job_ids"]
    # scancel: the job ends CANCELLED, or FAILED when its step dies first (a race in SLURM)
    assert re.search(rf"resubmitted: job {job} ended (CANCELLED|FAILED)", output), output
    resumed = json.loads((run_dir / "config.json").read_text())["resumed"]
    assert len(resumed) == 2 and all(r["at_epoch"] >= 1 for r in resumed), resumed
    log = (out / "sweeps" / "slurm" / f"{job}_0_log.err").read_text()
    assert "Caught signal SIGUSR2" in log and "DUE TO JOB REQUEUE" in log, log

    res = CliRunner().invoke(cli_main, ["sweep", *KILL_GRID, "--out", str(ref)])
    assert res.exit_code == 0, res.output
    assert read_metrics(run_dir) == read_metrics(ref / cell.run_id)
    assert ((run_dir / "genotypes.jsonl").read_text()
            == (ref / cell.run_id / "genotypes.jsonl").read_text())


def test_a_job_the_cluster_can_never_start_fails_instead_of_waiting(on_cluster, tmp_path):
    out = tmp_path / "results"
    res = CliRunner().invoke(cli_main, ["sweep", "--methods", "darts", "--spaces", "s3",
                                        "--epochs", "1", "--out", str(out), "--executor",
                                        "slurm", "--slurm-sbatch", "--nodes=5",
                                        "--slurm-poll-s", "0.3"])
    assert res.exit_code != 0 and "1 of 1 runs failed" in res.output, res.output
    [cell] = _index(out)["cells"]
    assert "SLURM will never start job" in cell["error"], cell["error"]
    assert on_cluster.run("squeue", "--noheader").strip() == ""  # the job was cancelled
