"""The SLURM executor: every cell a SLURM job (or a task of one job array), submitted with
submitit from the machine that drives the sweep (a cluster's login node).

submitit writes the sbatch script, pickles the job body and its result, and catches SLURM's
warning signal before a time limit or a preemption (``--signal=USR2@90``): the job body,
:class:`SlurmRun`, is checkpointable, so submitit requeues the same job and the run resumes
from its own ``checkpoint.pt`` (a run's whole state lives in its run directory, so the
"checkpoint" submitit pickles is just the same call again).

What submitit does not handle is a job that ends without being requeued: ``scancel``, a
killed job step, a lost node, one time-out too many. The driver watches the queue itself
with ``squeue`` (which works on clusters without accounting, unlike submitit's ``sacct``)
and, when a job has left the queue while its run is not done, submits the cell again (a new
job id, recorded in the index; the run resumes from its last finished epoch), at most
``max_resubmits`` times. A cell is resubmitted only after SLURM reports its job ended, so no
run is ever driven by two jobs at a time; a later invocation of the same sweep follows the
jobs of an earlier one that are still queued or running (:meth:`SlurmExecutor.adopt`)
instead of submitting them again. A run that raised (a bug, a missing dataset) is not
resubmitted: it is ``failed``, as with every executor.
"""
from __future__ import annotations

import getpass
import math
import os
import pickle
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...options import Option
from ...rundir import DONE, FAILED, read_summary
from ..spec import Cell, SweepError
from . import EXECUTORS
from .base import Emit, Executor, SummaryWatch, failed, interrupted, run_cell

SUBMITIT_MISSING = ("the slurm executor needs submitit, which is not installed here: "
                    "pip install 'nasbench-eval[slurm]'")
COMMANDS = ("sbatch", "squeue", "scancel", "srun", "sinfo")
ENDED = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL",
                   "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "REVOKED"})
"""Job states after which a job never runs again (all others, PENDING, RUNNING, COMPLETING,
REQUEUED, SUSPENDED, ..., mean it may still write its run directory)."""
NEVER_STARTS = frozenset({"PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit",
                          "BadConstraints", "InvalidAccount", "InvalidQOS",
                          "AccountNotAllowed", "QOSMaxWallDurationPerJobLimit",
                          "QOSMaxCpuPerJobLimit", "QOSMaxGRESPerJob",
                          "QOSMaxNodePerJobLimit", "DependencyNeverSatisfied"})
"""Reasons SLURM gives for a pending job that asks for what the partition, account or QOS
never allows: such a job is cancelled and its cell failed, instead of a sweep that waits
forever."""
# sbatch flags the executor writes itself; --slurm-sbatch may not set them behind its back
OWN_FLAGS = {"array": "jobs", "output": None, "error": None, "signal": None,
             "open-mode": None, "time": "time", "partition": "partition",
             "cpus-per-task": "cpus_per_task", "gpus-per-task": "gpus_per_task", "mem": "mem",
             "job-name": None}

_TIME = re.compile(r"^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


def import_submitit():
    try:
        import submitit
    except ImportError:
        raise SweepError(SUBMITIT_MISSING) from None
    return submitit


def time_minutes(value: str, where: str) -> int:
    """A SLURM time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``,
    ``D-HH:MM:SS``) in whole minutes, rounded up (submitit's ``time`` is in minutes)."""
    m = _TIME.match(value.strip())
    if not m:
        raise SweepError(f"{where}: {value!r} is not a SLURM time limit; write minutes (90), "
                         f"H:MM:SS (4:00:00) or D-HH:MM:SS (1-12:00:00)")
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH[:MM[:SS]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
        total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    elif len(parts) == 3:
        total = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    elif len(parts) == 2:  # MM:SS
        total = parts[0] * 60 + parts[1]
    else:
        total = parts[0] * 60
    if total <= 0:
        raise SweepError(f"{where}: the time limit must be positive, got {value!r}")
    return math.ceil(total / 60)


def sbatch_flags(text: str | None, where: str) -> dict[str, Any]:
    """``"--qos=high --account=lab --exclusive"`` -> submitit's ``additional_parameters``
    (``{"qos": "high", "account": "lab", "exclusive": True}``)."""
    out: dict[str, Any] = {}
    for token in shlex.split(text or ""):
        if not token.startswith("--") or len(token) < 3:
            raise SweepError(f"{where}: {token!r} is not a long sbatch flag; write each as "
                             f"--key=value or --flag (e.g. --qos=high --exclusive)")
        key, eq, value = token[2:].partition("=")
        if key in OWN_FLAGS:
            own = OWN_FLAGS[key]
            raise SweepError(f"{where}: --{key} is set by the slurm executor"
                             + (f"; use its option '{own}' (--slurm-{own.replace('_', '-')})"
                                if own else ""))
        out[key] = value if eq else True
    return out


class SlurmRun:
    """The body of a job: one cell, ``run_cell(config, threads)`` with that many CPU threads.

    ``checkpoint`` makes it checkpointable for submitit (which looks for that method): on
    SLURM's warning signal submitit requeues this same call, and the run resumes from the
    last epoch its run directory holds."""

    def __call__(self, config: dict[str, Any], threads: int) -> dict[str, Any]:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)  # before torch starts its thread pools
        return run_cell(config, threads)

    def checkpoint(self, config: dict[str, Any], threads: int):
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, config, threads)


class SlurmQueue:
    """The SLURM commands the driver uses (one object, replaced by a fake in unit tests)."""

    def __init__(self, user: str | None = None, timeout_s: float = 60.0) -> None:
        self.user = user or getpass.getuser()
        self.timeout_s = timeout_s
        self.reasons: dict[str, str] = {}
        """Why each pending job waits, as of the last :meth:`states`."""

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), capture_output=True, text=True, timeout=self.timeout_s)

    def states(self) -> dict[str, str]:
        """State of every job of this user SLURM still knows (array tasks one by one, and jobs
        that ended recently). Raises ``OSError`` when ``squeue`` fails."""
        try:
            res = self._run("squeue", "--noheader", "--array", "--states=all",
                            f"--user={self.user}", "--format=%i|%T|%r")
        except subprocess.TimeoutExpired:
            raise OSError("squeue timed out") from None
        if res.returncode != 0:
            raise OSError(f"squeue failed: {(res.stderr or res.stdout).strip()}")
        out, self.reasons = {}, {}
        for line in res.stdout.splitlines():
            job, state, reason = (line.strip().split("|") + ["", ""])[:3]
            if job:
                out[job] = state.strip()
                self.reasons[job] = reason.strip()
        return out

    def partitions(self) -> list[str]:
        res = self._run("sinfo", "--noheader", "--format=%P")
        if res.returncode != 0:
            raise OSError(f"sinfo failed: {(res.stderr or res.stdout).strip()}")
        return [p.strip().rstrip("*") for p in res.stdout.split()]

    def cancel(self, job_ids: Sequence[str]) -> None:
        """``scancel`` the jobs; best effort (it is called while stopping anyway)."""
        if job_ids:
            try:
                self._run("scancel", *job_ids)
            except (OSError, subprocess.TimeoutExpired):
                pass


@dataclass
class _Tracked:
    cell: Cell
    job_id: str
    since: float
    resubmits: int = 0
    ended_polls: int = 0


@EXECUTORS.register
class SlurmExecutor(Executor):
    """Each cell a SLURM job: one job array for the cells of an invocation (``jobs="array"``)
    or one job per cell (``jobs="per-run"``, each named by its run id), ``cpus_per_task``
    CPUs (and as many torch threads), ``gpus_per_task`` GPUs, ``time`` per job. A job that
    hits its time limit or is preempted is requeued by submitit; one that ends otherwise
    before its run is done is resubmitted by the driver (``max_resubmits``). Run directories
    are written by the jobs, so ``out`` must be on a file system the nodes share."""

    name = "slurm"
    packs_refused = ("each SLURM job drives one run directory, which its requeue and "
                     "resubmission follow (packed jobs are not built)")
    options = {
        "partition": Option(None, str, "partition (sbatch --partition) [default: the "
                                       "cluster's default]", none_ok=True),
        "time": Option("4:00:00", str, "time limit of each job: minutes, H:MM:SS or "
                                       "D-HH:MM:SS; a run that reaches it is requeued and "
                                       "resumes from its checkpoint [default: 4:00:00]"),
        "gpus_per_task": Option(0, int, "GPUs of each job [default: 0]", minimum=0),
        "cpus_per_task": Option(None, int, "CPUs of each job, also its torch threads "
                                           "[default: --cpus-per-run, else 1]",
                                minimum=1, none_ok=True),
        "mem": Option(None, str, "memory of each job, e.g. 16G (sbatch --mem) [default: the "
                                 "partition's]", none_ok=True),
        "sbatch": Option(None, str, "further sbatch flags, e.g. '--qos=high --account=lab'",
                         none_ok=True),
        "jobs": Option("array", str, "array: one job array per invocation; per-run: one "
                                     "job per run [default: array]",
                       choices=("array", "per-run")),
        "array_parallelism": Option(None, int, "at most N tasks of the array at a time "
                                               "[default: no limit]", minimum=1, none_ok=True),
        "max_resubmits": Option(3, int, "resubmissions of a run whose job ended before the "
                                        "run did (scancel, node failure) [default: 3]",
                                minimum=0),
        "setup": Option(None, str, "shell commands run in each job before the run, e.g. "
                                   "'module load cuda; source ~/venv/bin/activate'",
                        none_ok=True),
        "logs": Option(None, str, "folder of submitit's job files and logs (shared by the "
                                  "nodes) [default: OUT/sweeps/slurm]", none_ok=True),
        "poll_s": Option(10.0, float, "seconds between two looks at the queue [default: 10]",
                         positive=True),
    }

    def __init__(self, partition: str | None = None, time: str = "4:00:00",
                 gpus_per_task: int = 0, cpus_per_task: int = 1, mem: str | None = None,
                 sbatch: str | None = None, jobs: str = "array",
                 array_parallelism: int | None = None, max_resubmits: int = 3,
                 setup: str | None = None, logs: str | None = None, poll_s: float = 10.0,
                 queue: SlurmQueue | None = None) -> None:
        self.partition, self.gpus_per_task, self.cpus_per_task = partition, gpus_per_task, \
            cpus_per_task
        self.time_min = time_minutes(time, "--slurm-time")
        if mem is not None and not _MEM.match(mem):
            raise SweepError(f"--slurm-mem: {mem!r} is not a SLURM memory size; write e.g. "
                             f"16G, 16000M or 16000 (megabytes)")
        self.mem, self.extra = mem, sbatch_flags(sbatch, "--slurm-sbatch")
        self.jobs, self.array_parallelism = jobs, array_parallelism
        self.max_resubmits, self.setup, self.logs, self.poll_s = max_resubmits, setup, logs, poll_s
        self.queue = queue or SlurmQueue()
        self.previous: dict[int, str] = {}

    @classmethod
    def parse_options(cls, given: Mapping[str, Any],
                      where: Callable[[str], str] | None = None) -> dict[str, Any]:
        """As every executor's, and: ``time`` may be a number of minutes, ``sbatch`` and
        ``setup`` lists (of flags, of shell lines); formats are checked here, so a sweep
        file's mistake names its field."""
        where = where or (lambda k: f"--slurm-{k.replace('_', '-')}")
        norm = {str(k).replace("-", "_"): v for k, v in given.items()}
        if isinstance(norm.get("time"), int) and not isinstance(norm["time"], bool):
            norm["time"] = str(norm["time"])
        for key, sep in (("sbatch", " "), ("setup", "; ")):
            v = norm.get(key)
            if isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v):
                norm[key] = sep.join(shlex.quote(x) for x in v) if key == "sbatch" else sep.join(v)
        out = super().parse_options(norm, where)
        time_minutes(out["time"], where("time"))
        if out["mem"] is not None and not _MEM.match(out["mem"]):
            raise SweepError(f"{where('mem')}: {out['mem']!r} is not a SLURM memory size; "
                             f"write e.g. 16G, 16000M or 16000 (megabytes)")
        sbatch_flags(out["sbatch"], where("sbatch"))
        return out

    @classmethod
    def from_settings(cls, gpus: int = 0, ray_address: str | None = None,
                      cpus_per_run: int | None = None, workers: int | None = None,
                      options: Mapping[str, Any] | None = None) -> SlurmExecutor:
        opts = dict(options if options is not None else cls.parse_options({}))
        if ray_address:
            raise SweepError("--ray-address is only for --executor ray")
        if workers:
            raise SweepError("workers is only for --executor local (SLURM runs as many jobs "
                             "as the cluster gives it)")
        if gpus:
            raise SweepError("--gpus is for the local and ray executors; with --executor "
                             "slurm give each job its GPUs with --slurm-gpus-per-task "
                             "(gpus_per_task in the [slurm] table)")
        if opts["cpus_per_task"] is None:
            opts["cpus_per_task"] = cpus_per_run or 1
        elif cpus_per_run and cpus_per_run != opts["cpus_per_task"]:
            raise SweepError(f"--cpus-per-run {cpus_per_run} and --slurm-cpus-per-task "
                             f"{opts['cpus_per_task']} disagree; give one of them")
        return cls(**opts)

    # ------------------------------------------------------------------ before anything runs
    def check(self) -> None:
        import_submitit()
        missing = [c for c in COMMANDS if shutil.which(c) is None]
        if missing:
            raise SweepError(f"--executor slurm needs the SLURM commands on PATH "
                             f"({', '.join(missing)} not found): run the sweep on a login "
                             f"node of the cluster")
        try:
            self.queue.states()
            partitions = self.queue.partitions() if self.partition else []
        except OSError as exc:
            raise SweepError(f"--executor slurm: the cluster does not answer: {exc}") from None
        if self.partition and self.partition not in partitions:
            raise SweepError(f"--slurm-partition: no partition {self.partition!r} on this "
                             f"cluster; its partitions: {', '.join(partitions) or '(none)'}")

    def adopt(self, jobs: Mapping[int, Sequence[str]]) -> None:
        self.previous = {i: ids[-1] for i, ids in jobs.items() if ids}

    # ------------------------------------------------------------------ submitting
    def _executor(self, folder: Path):
        submitit = import_submitit()
        ex = submitit.SlurmExecutor(folder=folder, python=None)
        params: dict[str, Any] = {"time": self.time_min, "cpus_per_task": self.cpus_per_task,
                                  "additional_parameters": dict(self.extra)}
        if self.partition:
            params["partition"] = self.partition
        if self.gpus_per_task:
            params["gpus_per_task"] = self.gpus_per_task
        if self.mem:
            params["mem"] = self.mem
        if self.setup:
            params["setup"] = [self.setup]
        if self.array_parallelism:
            params["array_parallelism"] = self.array_parallelism
        ex.update_parameters(**params)
        return ex

    def _submit(self, ex: Any, cells: list[Cell], array: bool) -> list[str]:
        """Submit ``cells`` (one job array, or one job each); their job ids, in order."""
        from submitit.core.utils import FailedJobError

        calls = [({**c.config.to_dict(), "out": str(Path(c.config.out).resolve())},
                  self.cpus_per_task) for c in cells]
        ids: list[str] = []
        try:
            if array and len(cells) > 1:
                ex.update_parameters(job_name="nasbench-eval")
                with ex.batch():
                    jobs = [ex.submit(SlurmRun(), *call) for call in calls]
                ids = [j.job_id for j in jobs]
            else:
                for cell, call in zip(cells, calls):
                    ex.update_parameters(job_name=cell.run_id)
                    ids.append(ex.submit(SlurmRun(), *call).job_id)
        except FailedJobError as exc:
            self.queue.cancel(ids)
            raise SweepError(f"sbatch refused the job{'s' if len(cells) > 1 else ''}: "
                             f"{str(exc).strip()}") from None
        return ids

    # ------------------------------------------------------------------ following the jobs
    def execute(self, cells: list[Cell], emit: Emit) -> None:
        if not cells:
            return
        folder = (Path(self.logs) if self.logs
                  else Path(cells[0].config.out).resolve() / "sweeps" / "slurm")
        folder.mkdir(parents=True, exist_ok=True)
        ex = self._executor(folder)
        known = self._states_now() if self.previous else {}
        tracked: dict[int, _Tracked] = {}
        for cell in cells:  # jobs of an earlier invocation still queued or running
            job = self.previous.get(cell.index)
            if job is not None and job in known and known[job] not in ENDED:
                tracked[cell.index] = _Tracked(cell, job, time.time())
                emit(cell, "queued", {"job_id": job, "note": "of an earlier invocation"})
        fresh = [c for c in cells if c.index not in tracked]
        if fresh:
            for cell, job in zip(fresh, self._submit(ex, fresh, self.jobs == "array")):
                tracked[cell.index] = _Tracked(cell, job, time.time())
                emit(cell, "queued", {"job_id": job})
        watch = SummaryWatch()
        try:
            while tracked:
                time.sleep(self.poll_s)
                try:
                    states = self.queue.states()
                except OSError:
                    states = None  # the controller is busy or restarting: ask again later
                for t in list(tracked.values()):
                    watch.poll(t.cell, t.since, emit)
                    if states is None:
                        continue
                    state = states.get(t.job_id)
                    reason = self.queue.reasons.get(t.job_id, "")
                    if state == "PENDING" and reason in NEVER_STARTS:
                        self.queue.cancel([t.job_id])
                        emit(t.cell, "end", failed(
                            f"SLURM will never start job {t.job_id}: it waits for "
                            f"'{reason}' (it asks for more than the partition, account or "
                            f"QOS allows: check the --slurm-* options)"))
                        del tracked[t.cell.index]
                        continue
                    if state is not None and state not in ENDED:
                        continue
                    if self._ended(ex, folder, t, state, emit):
                        del tracked[t.cell.index]
        except KeyboardInterrupt:
            # no run goes on unattended: its job is cancelled (the run keeps its last
            # finished epoch; a rerun of the sweep resumes it)
            self.queue.cancel([t.job_id for t in tracked.values()])
            for t in tracked.values():
                emit(t.cell, "end", interrupted())
            raise

    def _states_now(self, tries: int = 3) -> dict[str, str]:
        """The queue, which must answer: without it a job of an earlier invocation that still
        runs could not be told from one that ended, and its run would be started twice."""
        for attempt in range(tries):
            try:
                return self.queue.states()
            except OSError as exc:
                if attempt == tries - 1:
                    raise SweepError(f"--executor slurm: cannot read the queue ({exc}); the "
                                     f"jobs of an earlier invocation may still run, so "
                                     f"nothing was submitted: try again") from None
                time.sleep(self.poll_s)
        return {}  # pragma: no cover - the loop returns or raises

    def _ended(self, ex: Any, folder: Path, t: _Tracked, state: str | None,
               emit: Emit) -> bool:
        """The job of ``t`` has left the queue (``state``: its last state, None when SLURM
        no longer lists it): report the run's end, or resubmit it. False: look again later."""
        kind, outcome = self._result(folder, t.job_id)
        summary = read_summary(t.cell.path, unreadable_ok=True) or {}
        status = summary.get("status")
        if kind is None and status not in DONE and t.ended_polls < 2:
            t.ended_polls += 1  # a shared file system may show the result file late
            return False
        if status in DONE:
            emit(t.cell, "end", outcome if kind == "run" and outcome["status"] == status else
                 {"status": status, "error": summary.get("error"), "traceback": None,
                  "epochs_done": summary.get("epochs_done"),
                  "final_test_error": summary.get("final_test_error")})
            return True
        if kind == "run" and outcome["status"] == FAILED:  # the run raised: not the job's fault
            emit(t.cell, "end", outcome)
            return True
        how = f"ended {state}" if state else "left the queue"
        if t.resubmits >= self.max_resubmits:
            log = _paths(folder, t.job_id).stderr
            emit(t.cell, "end", failed(
                f"SLURM job {t.job_id} {how} before the run finished "
                f"({summary.get('epochs_done') or 0}/{t.cell.config.epochs} epochs), after {t.resubmits} resubmission(s) "
                f"(--slurm-max-resubmits {self.max_resubmits}); its log: {log}"
                + (f"; {outcome['error']}" if kind == "job" else "")))
            return True
        [job] = self._submit(ex, [t.cell], array=False)
        old = t.job_id
        t.job_id, t.resubmits, t.ended_polls = job, t.resubmits + 1, 0
        emit(t.cell, "queued", {"job_id": job, "note": f"resubmitted: job {old} {how}"})
        return False

    @staticmethod
    def _result(folder: Path, job_id: str) -> tuple[str | None, dict[str, Any] | None]:
        """What the job left in submitit's result file: ``("run", run_cell's outcome)``,
        ``("job", failed(...))`` when the job body itself failed (e.g. submitit's "timed out
        too many times"), ``(None, None)`` when there is no result."""
        from submitit.core.utils import pickle_load

        path = _paths(folder, job_id).result_pickle
        try:
            tag, value = pickle_load(path)
        except (OSError, EOFError, ValueError, pickle.UnpicklingError):
            return None, None
        if tag == "success" and isinstance(value, dict):
            return "run", value
        last = str(value).strip().splitlines()[-1:] or [str(value)]
        return "job", {**failed(f"the job failed: {last[0]}"), "traceback": str(value)}


def _paths(folder: Path, job_id: str):
    from submitit.core.utils import JobPaths

    return JobPaths(folder, job_id=job_id, task_id=0)
