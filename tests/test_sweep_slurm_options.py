"""The SLURM executor without a cluster: its options (flags, the sweep file's [slurm] table,
clear errors), its checks before anything runs, and the driver's bookkeeping of jobs
(resubmission, adoption, failures) against a fake queue. The real cluster is in
test_sweep_slurm.py."""
from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from nasbench_eval.cli import main as cli_main
from nasbench_eval.sweep import SweepError, load_sweep_file, make_executor, run_sweep
from nasbench_eval.sweep.executors.slurm import SlurmExecutor, sbatch_flags, time_minutes

GRID = ["--methods", "darts", "--spaces", "s3", "--epochs", "1"]


def invoke(*args: str):
    return CliRunner().invoke(cli_main, ["sweep", *(str(a) for a in args)])


def test_options_are_typed_and_checked():
    ex = make_executor("slurm", cpus_per_run=1, options={
        "partition": "gpu", "time": 90, "gpus_per_task": "1", "mem": "16G",
        "sbatch": ["--qos=high", "--exclusive"], "jobs": "per-run"})
    assert (ex.partition, ex.time_min, ex.gpus_per_task, ex.cpus_per_task, ex.mem) == \
        ("gpu", 90, 1, 1, "16G")
    assert ex.extra == {"qos": "high", "exclusive": True} and ex.jobs == "per-run"
    assert [time_minutes(t, "t") for t in ("90", "1:30", "4:00:00", "1-12", "0:0:30")] == \
        [90, 2, 240, 2160, 1]
    assert sbatch_flags("--account=lab --constraint='a100|h100'", "x") == \
        {"account": "lab", "constraint": "a100|h100"}
    for bad, message in (
            ({"time": "soon"}, "--slurm-time: 'soon' is not a SLURM time limit"),
            ({"time": "0"}, "--slurm-time: the time limit must be positive"),
            ({"mem": "16GB"}, "--slurm-mem: '16GB' is not a SLURM memory size"),
            ({"jobs": "one"}, "--slurm-jobs: expected one of array, per-run"),
            ({"gpus_per_task": -1}, "--slurm-gpus-per-task: expected an integer >= 0"),
            ({"sbatch": "--time=5"}, "--time is set by the slurm executor; use its option "
                                     "'time'"),
            ({"sbatch": "qos=high"}, "'qos=high' is not a long sbatch flag"),
            ({"partion": "gpu"}, "executor 'slurm' has no option 'partion'; its options: "
                                 "array_parallelism")):
        with pytest.raises(SweepError, match=message.replace("(", r"\(").replace("|", r"\|")):
            make_executor("slurm", options=bad)
    with pytest.raises(SweepError, match="--gpus is for the local and ray executors"):
        make_executor("slurm", gpus=2)
    with pytest.raises(SweepError, match="--cpus-per-run 2 and --slurm-cpus-per-task 4 "
                                         "disagree"):
        make_executor("slurm", cpus_per_run=2, options={"cpus_per_task": 4})
    with pytest.raises(SweepError, match="executor 'local' has no option 'partition'"):
        make_executor("local", options={"partition": "gpu"})


def test_cli_flags_and_sweep_file_table(tmp_path):
    res = invoke(*GRID, "--out", tmp_path, "--slurm-partition", "gpu")
    assert res.exit_code != 0 and ("--slurm-partition is only for --executor slurm (this "
                                   "sweep uses the local executor)") in res.output, res.output
    res = invoke(*GRID, "--out", tmp_path, "--executor", "slurm", "--slurm-time", "x")
    assert res.exit_code != 0 and "--slurm-time: 'x' is not a SLURM time limit" in res.output
    assert not (tmp_path / "sweeps").exists()  # refused before anything was created

    study = tmp_path / "study.toml"
    study.write_text('methods = ["darts"]\nspaces = ["s3"]\nexecutor = "slurm"\n'
                     '[slurm]\npartition = "gpu"\ntime = "1:00:00"\nsbatch = ["--qos=high"]\n')
    _spec, ex = load_sweep_file(study)
    assert ex["executor"] == "slurm"
    assert ex["executor_options"] == {"slurm": {"partition": "gpu", "time": "1:00:00",
                                                "sbatch": ["--qos=high"]}}
    study.write_text('methods = ["darts"]\nspaces = ["s3"]\n[slurm]\nmem = "lots"\n')
    with pytest.raises(SweepError, match=r"study.toml: field 'slurm.mem': 'lots' is not a "
                                         r"SLURM memory size"):
        load_sweep_file(study)  # checked even when another executor runs the sweep
    study.write_text('methods = ["darts"]\nspaces = ["s3"]\nslurm = 3\n')
    with pytest.raises(SweepError, match="field 'slurm': expected a table of slurm executor "
                                         "options"):
        load_sweep_file(study)
    # a flag overrides the file's field, and an error names where the value came from
    study.write_text('methods = ["darts"]\nspaces = ["s3"]\nexecutor = "slurm"\n'
                     '[slurm]\ntime = "forever"\n')
    res = invoke(study, "--out", tmp_path)
    assert res.exit_code != 0 and "field 'slurm.time': 'forever'" in res.output, res.output
    study.write_text('methods = ["darts"]\nspaces = ["s3"]\nexecutor = "slurm"\n'
                     '[slurm]\ntime = "1:00:00"\n')
    res = invoke(study, "--out", tmp_path, "--slurm-time", "never")
    assert res.exit_code != 0 and "--slurm-time: 'never'" in res.output, res.output


def test_missing_submitit_or_slurm_is_a_clear_error_before_anything_runs(tmp_path,
                                                                         monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if submitit were not installed
    res = invoke(*GRID, "--out", tmp_path, "--executor", "slurm")
    assert res.exit_code != 0 and "pip install 'nasbench-eval[slurm]'" in res.output
    monkeypatch.delitem(sys.modules, "submitit")
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    res = invoke(*GRID, "--out", tmp_path, "--executor", "slurm")
    assert res.exit_code != 0 and "needs the SLURM commands on PATH" in res.output, res.output
    assert not (tmp_path / "sweeps").exists()


class FakeQueue:
    """squeue/scancel of a cluster whose jobs do what ``plan`` says, one step per poll."""

    def __init__(self) -> None:
        self.jobs: dict[str, str] = {}
        self.reasons: dict[str, str] = {}
        self.cancelled: list[str] = []

    def states(self) -> dict[str, str]:
        return dict(self.jobs)

    def partitions(self) -> list[str]:
        return ["debug"]

    def cancel(self, job_ids) -> None:
        self.cancelled += list(job_ids)


class FakeSlurm(SlurmExecutor):
    """The SLURM executor with submission and results faked: ``plan[(cell index, attempt)]``
    is what a job does at the next poll: finish, fail (the run raises) or die (killed);
    ``running`` holds jobs of an earlier invocation still running (job id -> what it does)."""

    def __init__(self, plan: dict, next_id: int = 100, running: dict | None = None,
                 **kw) -> None:
        super().__init__(poll_s=0.01, queue=FakeQueue(), **kw)
        self.plan, self.next_id, self.running = plan, next_id, running or {}
        self.results: dict[str, tuple] = {}
        self.submitted: list[tuple[int, str]] = []
        self.fake_jobs: dict[str, tuple] = {}  # job id -> (cell, what it does)
        self.seen: set[str] = set()
        self.queue.states = self._poll

    def _executor(self, folder):
        return None

    def _submit(self, ex, cells, array):
        ids = []
        for cell in cells:
            job, self.next_id = str(self.next_id), self.next_id + 1
            attempt = sum(1 for c, _ in self.submitted if c == cell.index)
            self.submitted.append((cell.index, job))
            self.queue.jobs[job] = "RUNNING"
            self.fake_jobs[job] = (cell, self.plan[(cell.index, attempt)])
            ids.append(job)
        return ids

    def _result(self, folder, job_id):
        return self.results.get(job_id, (None, None))

    def execute(self, cells, emit):
        for cell in cells:
            job = self.previous.get(cell.index)
            if job in self.running:
                self.queue.jobs[job] = "RUNNING"
                self.fake_jobs[job] = (cell, self.running[job])
        super().execute(cells, emit)

    def _poll(self):  # every running job acts, at the second look at it
        for job, (cell, what) in self.fake_jobs.items():
            if self.queue.jobs[job] != "RUNNING" or job not in self.seen:
                self.seen.add(job)
                continue
            cell.path.mkdir(parents=True, exist_ok=True)
            status = {"finish": "finished", "fail": "failed", "die": "running"}[what]
            done = 1 if what == "finish" else 0
            (cell.path / "summary.json").write_text(json.dumps(
                {"status": status, "epochs_done": done,
                 "final_test_error": 0.5 if done else None}))
            if what != "die":
                self.results[job] = ("run", {"status": status, "epochs_done": done,
                                             "error": "boom" if what == "fail" else None,
                                             "traceback": None, "final_test_error": None})
            self.queue.jobs[job] = "CANCELLED" if what == "die" else "COMPLETED"
        return dict(self.queue.jobs)


def _fake_sweep(tmp_path, ex, seeds="0-2"):
    return run_sweep(methods="darts", spaces="s3", seeds=seeds, epochs=1, out=tmp_path,
                     executor=ex, quiet=True, summary=False)


def test_a_dead_job_is_resubmitted_a_failed_run_is_not(tmp_path, monkeypatch):
    monkeypatch.setattr(SlurmExecutor, "check", lambda self: None)
    plan = {(0, 0): "finish", (1, 0): "die", (1, 1): "finish", (2, 0): "fail"}
    ex = FakeSlurm(plan)
    doc = _fake_sweep(tmp_path, ex)
    assert [c["status"] for c in doc["cells"]] == ["finished", "finished", "failed"]
    assert [c["job_ids"] for c in doc["cells"]] == [["100"], ["101", "103"], ["102"]]
    assert doc["cells"][2]["error"] == "boom"  # the run's own error, not resubmitted

    # a job that keeps dying: resubmitted max_resubmits times, then the run is failed
    ex = FakeSlurm({(0, i): "die" for i in range(3)}, max_resubmits=2)
    doc = _fake_sweep(tmp_path / "dies", ex, seeds="0")
    [cell] = doc["cells"]
    assert cell["status"] == "failed" and cell["job_ids"] == ["100", "101", "102"]
    assert ("SLURM job 102 ended CANCELLED before the run finished (0/1 epochs), after 2 "
            "resubmission(s) (--slurm-max-resubmits 2)") in cell["error"]


def test_a_rerun_follows_the_jobs_still_queued_instead_of_submitting_them_again(
        tmp_path, monkeypatch):
    monkeypatch.setattr(SlurmExecutor, "check", lambda self: None)
    ex = FakeSlurm({(0, 0): "die", (1, 0): "die"}, max_resubmits=0)
    doc = _fake_sweep(tmp_path, ex, seeds="0-1")
    assert [c["job_ids"] for c in doc["cells"]] == [["100"], ["101"]]
    # the next invocation: job 101 of cell 1 is still running on the cluster, 100 is gone
    ex = FakeSlurm({(0, 0): "finish"}, next_id=102, running={"101": "finish"})
    doc = _fake_sweep(tmp_path, ex, seeds="0-1")
    assert ex.submitted == [(0, "102")]  # cell 1's job is followed, not submitted again
    assert [c["status"] for c in doc["cells"]] == ["finished", "finished"]
    assert [c["job_ids"] for c in doc["cells"]] == [["100", "102"], ["101"]]


def test_an_unreadable_queue_with_earlier_jobs_submits_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(SlurmExecutor, "check", lambda self: None)
    ex = FakeSlurm({(0, 0): "die"}, max_resubmits=0)
    _fake_sweep(tmp_path, ex, seeds="0")
    ex = FakeSlurm({(0, 0): "finish"}, next_id=101)

    def broken():
        raise OSError("squeue failed: slurm_load_jobs error: Socket timed out")

    ex.queue.states = broken
    with pytest.raises(SweepError, match="cannot read the queue .*Socket timed out.*nothing "
                                         "was submitted"):
        _fake_sweep(tmp_path, ex, seeds="0")
    assert ex.submitted == []


def test_ctrl_c_cancels_the_sweeps_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(SlurmExecutor, "check", lambda self: None)
    ex = FakeSlurm({(0, 0): "die", (1, 0): "die"})
    polls = []

    def interrupted_queue():
        polls.append(1)
        if len(polls) == 2:
            raise KeyboardInterrupt
        return dict(ex.queue.jobs)

    ex.queue.states = interrupted_queue
    with pytest.raises(KeyboardInterrupt):
        _fake_sweep(tmp_path, ex, seeds="0-1")
    assert sorted(ex.queue.cancelled) == ["100", "101"]  # no job goes on unattended
    [index] = (tmp_path / "sweeps").glob("*.json")
    doc = json.loads(index.read_text())
    assert [c["status"] for c in doc["cells"]] == ["interrupted", "interrupted"]
    assert [c["job_ids"] for c in doc["cells"]] == [["100"], ["101"]]
    assert doc["invocations"][-1]["interrupted"] is True


def test_a_job_slurm_will_never_start_fails_its_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(SlurmExecutor, "check", lambda self: None)
    ex = FakeSlurm({(0, 0): "finish"})
    ex.queue.states = lambda: {"100": "PENDING"}
    ex.queue.reasons = {"100": "PartitionNodeLimit"}
    doc = _fake_sweep(tmp_path, ex, seeds="0")
    [cell] = doc["cells"]
    assert cell["status"] == "failed" and ex.queue.cancelled == ["100"]
    assert "SLURM will never start job 100: it waits for 'PartitionNodeLimit'" in cell["error"]
