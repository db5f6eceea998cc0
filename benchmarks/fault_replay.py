"""Replay the faults a run meets in practice and check that nothing is lost or silently wrong.

    python benchmarks/fault_replay.py                      # every case, ~2-3 min of one core
    python benchmarks/fault_replay.py --cases concurrent,kill-checkpoint-write
    python benchmarks/fault_replay.py --json results/benchmarks/fault-replay.json

Each case drives ``nasbench-eval`` in child processes on tiny digits searches (3 cells,
4 channels, 3 epochs of 6 steps, one torch thread) and compares the outcome with
uninterrupted runs of the same settings made first (metrics.csv without its timing
columns, genotypes.jsonl, the summary's status and numbers):

* ``kill-mid-epoch``: SIGKILL while epoch 1 runs, then ``--resume``;
* ``kill-checkpoint-write``: SIGKILL while checkpoint.pt is being written (the write is held
  open by a hook, so the kill lands inside it), then ``--resume``;
* ``kill-after-checkpoint``: SIGKILL after the checkpoint of an epoch replaced the old one
  and before metrics.csv and summary.json were written, then ``--resume``;
* ``sigint``: Ctrl-C while epoch 1 runs (status ``interrupted``, exit 130), then ``--resume``;
* ``unreadable-checkpoint``: SIGKILL, the checkpoint then cut in half; ``--resume`` must say
  so and keep the file aside, a second ``--resume`` must run the search again to the same end;
* ``concurrent``: four identical ``run --resume`` started at once into one --out: one drives
  the run directory, the others are refused naming the holder (or find it finished);
* ``killed-sweep``: a 2-seed sweep SIGKILLed (driver and worker) during its first run, then
  rerun: every run finished once, equal to the uninterrupted runs, each indexed once;
* ``out-is-a-file``: ``--out`` naming a file: a one-line message, no traceback.

A case counts a *traceback* when any of its processes printed one, *silent wrong* when a run
ended without an error but its results differ from the uninterrupted run's (or a process
that should have been refused or stopped was not), and *data loss* when a finished epoch, a
moved-aside checkpoint or a run directory is gone. The last line prints the totals:
``cases N / tracebacks T / silent wrong S / data loss D``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = (0, 1)
SETTINGS = ["--method", "darts", "--space", "s3", "--dataset", "digits", "--epochs", "3",
            "--layers", "3", "--channels", "4", "--batch-size", "32",
            "--max-steps-per-epoch", "6"]
TIME_COLUMNS = {"epoch_time_s", "wall_time_s", "oracle_time_s", "oracle_train_time_s",
                "oracle_cached"}  # differ between otherwise identical runs (cache hits, timings)
SUMMARY_KEYS = ("status", "epochs_done", "final_genotype", "final_test_error",
                "best_test_error", "final_val_acc", "final_param_free_fraction")

# a child that runs the CLI with one write held open (or stalled) at a given epoch, so that
# the parent's SIGKILL lands inside it; NBE_FAULT names which
_HOOK = r"""
import os, sys, time
from pathlib import Path
import nasbench_eval.rundir as r
fault, mark = os.environ["NBE_FAULT"], Path(os.environ["NBE_FAULT_MARK"])
at = int(os.environ["NBE_FAULT_EPOCH"])
def stall():
    mark.touch()
    time.sleep(600)
if fault == "checkpoint-write":
    orig = r.save_checkpoint
    def save(path, state):
        if state["epoch"] == at:
            import torch
            with r._replacing(Path(path), "wb") as f:  # the real writer, held open
                torch.save(state, f)
                f.flush()
                stall()
        orig(path, state)
    r.save_checkpoint = save
elif fault == "after-checkpoint":
    orig = r.write_metrics
    def write(path, rows):
        if len(rows) == at:
            stall()  # checkpoint.pt already holds epoch `at`; metrics and summary do not
        orig(path, rows)
    r.write_metrics = write
from nasbench_eval.cli import main
sys.argv = ["nasbench-eval", *sys.argv[1:]]
main()
"""


@dataclass
class Case:
    name: str
    tracebacks: int = 0
    silent_wrong: int = 0
    data_loss: int = 0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def wrong(self, what: str) -> None:
        self.silent_wrong += 1
        self.notes.append(f"WRONG: {what}")

    def lost(self, what: str) -> None:
        self.data_loss += 1
        self.notes.append(f"LOST: {what}")


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1"}


def _cli(*args: str, hook: dict[str, str] | None = None) -> list[str]:
    if hook is None:
        return [sys.executable, "-m", "nasbench_eval.cli", *args]
    return [sys.executable, "-c", _HOOK, *args]


class Proc:
    """A child process with its output in files (so a full pipe never blocks it)."""

    def __init__(self, argv: list[str], log: Path, hook: dict[str, str] | None = None):
        self.log = log
        self.out = open(log, "w")  # noqa: SIM115 - closed in wait()
        env = _env() | (hook or {})
        self.p = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT, env=env,
                                  cwd=ROOT, start_new_session=True)

    def kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass

    def wait(self, timeout: float = 300) -> tuple[int, str]:
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_group(signal.SIGKILL)
            rc = self.p.wait()
        self.out.close()
        return rc, self.log.read_text()


def _run(out: Path, *extra: str, seed: int = 0, log: Path, hook: dict[str, str] | None = None,
         quiet: bool = True) -> Proc:
    return Proc(_cli("run", *SETTINGS, "--seed", str(seed), "--out", str(out),
                     *(["--quiet"] if quiet else []), *extra, hook=hook), log, hook)


def _rows(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "metrics.csv"
    if not path.exists():
        return []
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in TIME_COLUMNS} for r in csv.DictReader(f)]


def _result(run_dir: Path) -> dict:
    """What must equal between a resumed and an uninterrupted run."""
    summary = json.loads((run_dir / "summary.json").read_text())
    return {"metrics": _rows(run_dir),
            "genotypes": (run_dir / "genotypes.jsonl").read_text(),
            "summary": {k: summary.get(k) for k in SUMMARY_KEYS}}


def _only_run(out: Path) -> Path | None:
    dirs = [d for d in out.iterdir() if (d / "summary.json").exists()] if out.exists() else []
    return dirs[0] if len(dirs) == 1 else None


def _wait_for(cond: Callable[[], bool], timeout: float = 240, what: str = "") -> None:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise TimeoutError(f"waited {timeout:.0f} s for {what}")
        time.sleep(0.05)


def _epochs_in(out: Path) -> int:
    d = _only_run(out)
    return len(_rows(d)) if d else 0


def _count_tracebacks(case: Case, *texts: str) -> None:
    for t in texts:
        if "Traceback (most recent call last)" in t:
            case.tracebacks += 1
            case.notes.append("TRACEBACK: " + t.strip().splitlines()[-1][:200])


def _compare(case: Case, run_dir: Path | None, reference: dict, what: str) -> None:
    if run_dir is None or not (run_dir / "summary.json").exists():
        case.lost(f"{what}: no run directory")
        return
    got = _result(run_dir)
    if len(got["metrics"]) < len(reference["metrics"]):
        case.lost(f"{what}: {len(got['metrics'])} of {len(reference['metrics'])} epochs")
    elif got != reference:
        diff = [k for k in got if got[k] != reference[k]]
        case.wrong(f"{what}: differs from the uninterrupted run in {', '.join(diff)}")


def _resume(case: Case, out: Path, work: Path, reference: dict, seed: int = 0) -> None:
    rc, text = _run(out, "--resume", seed=seed, log=work / "resume.log").wait()
    _count_tracebacks(case, text)
    if rc != 0:
        case.notes.append(f"resume exited {rc}: {text.strip().splitlines()[-1:]}")
    _compare(case, _only_run(out), reference, "resumed run")


# ----------------------------------------------------------------------------- cases

def kill_mid_epoch(case: Case, work: Path, refs: dict[int, dict]) -> None:
    out = work / "out"
    p = _run(out, log=work / "first.log")
    _wait_for(lambda: _epochs_in(out) >= 1, what="epoch 0")
    time.sleep(0.4)  # into epoch 1
    p.kill_group(signal.SIGKILL)
    _, text = p.wait()
    _count_tracebacks(case, text)
    case.notes.append(f"killed with {_epochs_in(out)} epoch(s) recorded")
    _resume(case, out, work, refs[0])


def _kill_in_hook(case: Case, work: Path, refs: dict[int, dict], fault: str) -> None:
    out, mark = work / "out", work / "mark"
    hook = {"NBE_FAULT": fault, "NBE_FAULT_MARK": str(mark), "NBE_FAULT_EPOCH": "2"}
    p = _run(out, log=work / "first.log", hook=hook)
    _wait_for(mark.exists, what=f"the {fault} hook")
    p.kill_group(signal.SIGKILL)
    _, text = p.wait()
    _count_tracebacks(case, text)
    d = _only_run(out)
    left = sorted(x.name for x in d.iterdir() if x.name.endswith(".tmp")) if d else []
    case.notes.append(f"killed with {_epochs_in(out)} epoch(s) in metrics.csv; temporary "
                      f"files left: {len(left)}")
    _resume(case, out, work, refs[0])


def kill_checkpoint_write(case: Case, work: Path, refs: dict[int, dict]) -> None:
    _kill_in_hook(case, work, refs, "checkpoint-write")


def kill_after_checkpoint(case: Case, work: Path, refs: dict[int, dict]) -> None:
    _kill_in_hook(case, work, refs, "after-checkpoint")


def sigint(case: Case, work: Path, refs: dict[int, dict]) -> None:
    out = work / "out"
    p = _run(out, log=work / "first.log")
    _wait_for(lambda: _epochs_in(out) >= 1, what="epoch 0")
    time.sleep(0.4)
    p.kill_group(signal.SIGINT)
    rc, text = p.wait()
    _count_tracebacks(case, text)
    status = json.loads((_only_run(out) / "summary.json").read_text())["status"]
    if rc != 130 or status != "interrupted" or "--resume" not in text:
        case.wrong(f"Ctrl-C: exit {rc}, status {status}, message {text.strip()[-120:]!r}")
    _resume(case, out, work, refs[0])


def unreadable_checkpoint(case: Case, work: Path, refs: dict[int, dict]) -> None:
    out = work / "out"
    p = _run(out, log=work / "first.log")
    _wait_for(lambda: _epochs_in(out) >= 1, what="epoch 0")
    p.kill_group(signal.SIGKILL)
    p.wait()
    d = _only_run(out)
    ckpt = d / "checkpoint.pt"
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    rc, text = _run(out, "--resume", log=work / "refused.log").wait()
    _count_tracebacks(case, text)
    aside = list(d.glob("checkpoint.pt.unreadable-*"))
    if rc == 0 or "unreadable" not in text:
        case.wrong(f"a truncated checkpoint was not reported (exit {rc})")
    if len(aside) != 1 or aside[0].read_bytes() != data[: len(data) // 2]:
        case.lost("the unreadable checkpoint was not kept aside")
    status = json.loads((d / "summary.json").read_text())["status"]
    if status == "running":
        case.wrong("summary.json left at 'running'")
    _resume(case, out, work, refs[0])


def concurrent(case: Case, work: Path, refs: dict[int, dict]) -> None:
    out = work / "out"
    procs = [_run(out, "--resume", log=work / f"driver{i}.log", quiet=False) for i in range(4)]
    results = [p.wait() for p in procs]
    _count_tracebacks(case, *(t for _, t in results))
    ran = sum(rc == 0 for rc, _ in results)
    refused = sum(rc == 1 and "is being run by pid" in t for rc, t in results)
    computed = sum(", anytime oracle '" in t for _, t in results)  # the start banner
    case.notes.append(f"{ran} exited 0 (one drove the run, the others found it finished), "
                      f"{refused} refused naming the holder")
    if computed != 1:
        case.wrong(f"{computed} drivers computed the run (one must)")
    if ran + refused != len(results):
        case.wrong("a driver ended otherwise: " + "; ".join(
            t.strip().splitlines()[-1] for rc, t in results if rc not in (0, 1)))
    _compare(case, _only_run(out), refs[0], "the run driven by four processes")
    config = json.loads((_only_run(out) / "config.json").read_text())
    if config.get("resumed"):
        case.wrong(f"two drivers computed parts of one run: {config['resumed']}")


def killed_sweep(case: Case, work: Path, refs: dict[int, dict]) -> None:
    out = work / "out"
    argv = _cli("sweep", "--methods", "darts", "--spaces", "s3", "--datasets", "digits",
                "--seeds", "0-1", "--epochs", "3", "--layers", "3", "--channels", "4",
                "--batch-size", "32", "--max-steps-per-epoch", "6", "--out", str(out),
                "--cpus-per-run", "1", "--name", "replay")
    p = Proc(argv, work / "sweep1.log")

    def first_epoch() -> bool:
        return out.exists() and any(len(_rows(d)) >= 1 for d in out.iterdir() if d.is_dir())

    _wait_for(first_epoch, what="the sweep's first epoch")
    time.sleep(0.4)
    p.kill_group(signal.SIGKILL)
    _, text = p.wait()
    _count_tracebacks(case, text)
    rc, text = Proc(argv, work / "sweep2.log").wait()
    _count_tracebacks(case, text)
    if rc != 0:
        case.notes.append(f"sweep rerun exited {rc}: {text.strip().splitlines()[-1:]}")
    runs = [d for d in out.iterdir() if (d / "summary.json").exists()]
    if len(runs) != len(SEEDS):
        case.lost(f"{len(runs)} run directories for {len(SEEDS)} seeds")
    for d in runs:
        seed = json.loads((d / "summary.json").read_text())["seed"]
        _compare(case, d, refs[seed], f"sweep run seed {seed}")
    index = [json.loads(f.read_text()) for f in (out / "sweeps").glob("*.json")]
    ids = [c["run_id"] for doc in index for c in doc.get("cells", [])]
    if len(ids) != len(set(ids)) or len(ids) != len(SEEDS):
        case.wrong(f"sweep index lists {ids}")


def out_is_a_file(case: Case, work: Path, refs: dict[int, dict]) -> None:
    f = work / "afile"
    f.write_text("not a directory")
    rc, text = _run(f, log=work / "run.log").wait()
    _count_tracebacks(case, text)
    if rc != 1 or "--out" not in text:
        case.wrong(f"--out naming a file: exit {rc}, {text.strip()[-160:]!r}")
    if f.read_text() != "not a directory":
        case.lost("the file named by --out was changed")


CASES: dict[str, Callable[[Case, Path, dict[int, dict]], None]] = {
    "kill-mid-epoch": kill_mid_epoch, "kill-checkpoint-write": kill_checkpoint_write,
    "kill-after-checkpoint": kill_after_checkpoint, "sigint": sigint,
    "unreadable-checkpoint": unreadable_checkpoint, "concurrent": concurrent,
    "killed-sweep": killed_sweep, "out-is-a-file": out_is_a_file}


def references(work: Path, seeds: tuple[int, ...]) -> dict[int, dict]:
    """Uninterrupted runs, one per seed, run side by side."""
    procs = {s: _run(work / "reference", seed=s, log=work / f"reference{s}.log") for s in seeds}
    refs = {}
    for s, p in procs.items():
        rc, text = p.wait()
        if rc != 0:
            raise SystemExit(f"reference run of seed {s} failed:\n{text}")
    for d in (work / "reference").iterdir():
        if (d / "summary.json").exists():
            refs[json.loads((d / "summary.json").read_text())["seed"]] = _result(d)
    return refs


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES),
                    help=f"comma-separated subset of: {', '.join(CASES)}")
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one, "
                                                 "removed at the end)")
    ap.add_argument("--json", default=None, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="fault-replay-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    seeds = SEEDS if "killed-sweep" in names else (0,)
    refs = references(work, seeds)
    print(f"references: {len(refs)} uninterrupted run(s) in {time.time() - t0:.0f} s",
          flush=True)
    cases = []
    for name in names:
        case, t = Case(name), time.time()
        (work / name).mkdir()
        try:
            CASES[name](case, work / name, refs)
        except (TimeoutError, OSError, ValueError, KeyError) as exc:
            case.wrong(f"the replay itself failed: {type(exc).__name__}: {exc}")
        case.seconds = round(time.time() - t, 1)
        cases.append(case)
        flag = "ok" if not (case.tracebacks or case.silent_wrong or case.data_loss) else "FAIL"
        print(f"{flag:4} {name:24} {case.seconds:6.1f} s  " + " | ".join(case.notes), flush=True)
    totals = {k: sum(getattr(c, k) for c in cases)
              for k in ("tracebacks", "silent_wrong", "data_loss")}
    doc = {"cases": [asdict(c) for c in cases], "totals": totals, "seconds":
           round(time.time() - t0, 1), "python": platform.python_version(),
           "host": platform.node(), "date": dt.datetime.now(dt.timezone.utc).isoformat(
               timespec="seconds")}
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    print(f"cases {len(cases)} / tracebacks {totals['tracebacks']} / silent wrong "
          f"{totals['silent_wrong']} / data loss {totals['data_loss']}")
    return doc


if __name__ == "__main__":
    main()
