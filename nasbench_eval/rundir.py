"""The run-directory format, in one module: what a run leaves on disk and how it is written.

A search run is ``<out>/<run-id>/`` holding ``config.json`` (every setting + environment),
``metrics.csv`` (one row per epoch), ``genotypes.jsonl``, ``checkpoint.pt`` (after every
epoch) and ``summary.json`` (status and headline numbers). The evaluation stage writes the
same kinds of files under its own names. Run directories are a published format: leaderboards
and plots read them on a laptop, and ones written by earlier versions must still resume and
load (tests/test_rundir_compat.py), so every writer and reader of the format goes through here.

Everything the search runner, the evaluation stage, the sweep and the analysis share lives
here: file names, atomic writes, the metrics CSV, checkpoints, the summary, status values, the
sha1 fingerprint behind run ids, per-epoch seeds, the environment record, and
:class:`RunRecorder`, the lifecycle of one run (resume, per-epoch files, divergence,
Ctrl-C/exception -> status). Importing it does not import torch (the analysis must run
without it); the checkpoint and environment helpers import torch when called.
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import hashlib
import json
import math
import os
import platform
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

from .errors import RunDirError

# ----------------------------------------------------------------------------- names

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.csv"
GENOTYPES_FILE = "genotypes.jsonl"
CHECKPOINT_FILE = "checkpoint.pt"
SUMMARY_FILE = "summary.json"
RUN_LOG_FILE = "run.log"  # the console's lines, warnings, a failure's traceback (runlog.py)
RUN_FILES = (CONFIG_FILE, METRICS_FILE, GENOTYPES_FILE, CHECKPOINT_FILE, SUMMARY_FILE)

# status values of summary.json (and of the evaluation stage's document)
RUNNING = "running"
FINISHED = "finished"
DIVERGED = "diverged"  # a non-finite loss ended the run; a result, never retried
INTERRUPTED = "interrupted"  # Ctrl-C (or a sweep's stop); --resume continues it
FAILED = "failed"  # an exception; the summary's ``error`` names it, --resume retries
STATUSES = (RUNNING, FINISHED, DIVERGED, INTERRUPTED, FAILED)
DONE = (FINISHED, DIVERGED)
"""Statuses of a run that is over: a resume returns it as it is, a sweep skips it."""


def is_done(summary: Mapping[str, Any] | None) -> bool:
    return summary is not None and summary.get("status") in DONE


# ----------------------------------------------------------------------------- identity

def fingerprint(obj: Any, n: int = 8) -> str:
    """The first ``n`` hex digits of the sha1 of ``obj``: of its text when it is a ``str``,
    else of its JSON with sorted keys (``default=str``).

    One function behind every id on disk, so the run id (:meth:`RunConfig.fingerprint`), the
    evaluation id (settings + genotype) and the sweep id (the sorted run ids joined by
    newlines) all stay what they were: changing the encoding would orphan every directory
    already written."""
    text = obj if isinstance(obj, str) else json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:n]


_STREAM_IDS = {"init": 0, "train": 1, "val": 2, "torch": 3}


def derived_seed(seed: int, epoch: int, stream: str) -> int:
    """Independent, reproducible seed for one stream of randomness in one epoch.

    Every epoch's randomness is a function of (seed, epoch, stream) alone, which is why a
    resumed run computes what an uninterrupted one computes. ``epoch=-1`` is initialisation;
    streams: ``init``, ``train``, ``val``, ``torch`` (the global RNG)."""
    import numpy as np  # here, not at the top: this module imports nothing heavy

    ss = np.random.SeedSequence([seed, epoch + 1, _STREAM_IDS[stream]])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


def git_commit() -> str | None:
    """The package's git commit (``-dirty`` with uncommitted changes), None outside git."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) if commit else None


def environment(device: Any) -> dict[str, Any]:
    """Where and with what a run computed (config.json's ``environment``, the evaluation
    document's too); ``device`` is a ``torch.device``."""
    import torch

    from . import __version__

    return {
        "nasbench_eval": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or "cpu"),
        "threads": torch.get_num_threads(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- writing

@contextlib.contextmanager
def _replacing(path: Path, mode: str = "w", **open_kw: Any) -> Iterator[Any]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    The temporary name is unique per writer (process, thread, random suffix), so concurrent
    writers of one file (a sweep's worker and its driver, two threads) never collide: each
    replaces the file whole, and a reader sees one complete version or the other."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}-"
                         f"{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, mode.replace("w", "x"), **open_kw) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that no reader ever sees a partial file."""
    with _replacing(Path(path)) as f:
        f.write(text)


def write_json(path: str | Path, doc: Any) -> None:
    """The JSON documents of a run directory: indent 2, a final newline, written atomically."""
    atomic_write(path, json.dumps(doc, indent=2) + "\n")


def read_json(path: str | Path) -> Any | None:
    """A JSON document, or None when the file does not exist."""
    p = Path(path)
    return json.loads(p.read_text()) if p.exists() else None


def write_jsonl(path: str | Path, records: Iterable[Any]) -> None:
    """One JSON object per line (``genotypes.jsonl``), written atomically."""
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in records))


def write_metrics(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Per-epoch rows as CSV; the columns are every key in order of first appearance (a
    method may add a column from some epoch on). Nothing is written for no rows."""
    if not rows:
        return
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    with _replacing(Path(path), newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def read_summary(run_dir: str | Path, *, unreadable_ok: bool = False) -> dict[str, Any] | None:
    """``summary.json`` of a run directory, or None when there is none (yet).

    ``unreadable_ok``: None also for a file that cannot be read or is not JSON, instead of
    the error; the sweep reads the summaries of runs it does not own this way, so one damaged
    directory does not stop a grid (that run then fails on its own, with the error)."""
    try:
        return read_json(Path(run_dir) / SUMMARY_FILE)
    except (OSError, ValueError):
        if unreadable_ok:
            return None
        raise


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> None:
    write_json(Path(run_dir) / SUMMARY_FILE, summary)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` atomically: a crash mid-write leaves the previous checkpoint intact."""
    import torch

    with _replacing(Path(path), "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | Path, device: Any) -> dict[str, Any]:
    import torch

    return torch.load(path, map_location=device, weights_only=False)


def is_finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))


def nonfinite_losses(row: Mapping[str, Any]) -> dict[str, float]:
    """The ``*_loss`` entries of a metrics row that are NaN or infinite (divergence)."""
    return {k: v for k, v in row.items() if k.endswith("_loss") and not is_finite(v)}


def refuse_existing(path: str | Path, resume: bool, what: str = "a run",
                    hint: str = ", or delete the directory to start over") -> dict[str, Any] | None:
    """The record (summary) at ``path`` of an earlier run, or None when there is none.

    An existing record without ``resume`` raises :class:`RunDirError` rather than
    overwriting a result; callers return early when :func:`is_done` says it is over."""
    previous = read_json(path)
    if previous is not None and not resume:
        raise RunDirError(
            f"{Path(path).parent} already holds {what} (status: {previous.get('status')}); "
            f"pass --resume (resume=True) to continue it{hint}")
    return previous


# ----------------------------------------------------------------------------- location, lock

LOCK_FILE = ".lock"


def ensure_writable_dir(path: str | Path, flag: str = "--out") -> Path | None:
    """Create the directory ``path`` (and its parents) and prove a file can be written in it,
    before any data or model is built: a bad output location (a file, a path under a file,
    /proc, a read-only or immutable directory) is a :class:`RunDirError` naming ``flag`` and
    the reason, seconds before the run would otherwise have failed on its first write.
    Returns the outermost directory it created (None when ``path`` existed)."""
    path = Path(path)
    where = next((p for p in (path, *path.parents) if p.exists()), None)
    if where is not None and not where.is_dir():
        raise RunDirError(f"{flag}: cannot make {path}: {where} is a file, not a directory; "
                          f"choose another {flag}")
    created = None if where == path else next(
        p for p in (path, *path.parents) if p.parent == where)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        probe.open("x").close()
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"{flag}: cannot write in {path}: {exc.strerror or exc} "
                          f"({exc.filename or path}); choose a writable {flag}") from None
    return created


class RunDirLock:
    """One driver per run directory: an exclusive advisory lock on ``<dir>/.lock``, taken for
    the whole of a run (read state, compute, write) and released by the OS when its process
    ends in any way (SIGKILL included), so a lock left by a dead process is simply taken over.
    The file names its holder (pid, host, start time) for the error of a second driver. It is
    removed only by its holder (:meth:`remove`, for a run directory that stayed empty), and a
    taker checks that the file it locked is still the one at the path, so a removal never
    lets two drivers in."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.fh: Any = None

    def __enter__(self) -> RunDirLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+")  # noqa: SIM115 - held until __exit__
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = fh.read().strip()
                fh.close()
                raise RunDirError(f"{self.path.parent} is being run by {_holder(holder)} (lock "
                                  f"{self.path}); wait for it to end or stop it, then rerun "
                                  f"with --resume") from None
            try:
                current = os.stat(self.path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            fh.close()  # its holder removed it meanwhile: lock the new one
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": platform.node(), "started":
                             _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}))
        fh.flush()
        self.fh = fh
        return self

    def remove(self) -> None:
        """Delete the lock file while holding it (then release)."""
        if self.fh is not None:
            self.path.unlink(missing_ok=True)
        self.__exit__()

    def __exit__(self, *exc: Any) -> None:
        if self.fh is not None:
            self.fh.close()  # releases the lock
            self.fh = None


def _holder(text: str) -> str:
    try:
        h = json.loads(text)
        return f"pid {h['pid']} on host {h['host']}, started {h['started']}"
    except (ValueError, TypeError, KeyError):
        return "another process"


@contextlib.contextmanager
def claim_run_dir(run_dir: str | Path, flag: str = "--out") -> Iterator[Path]:
    """The run directory, checked writable (:func:`ensure_writable_dir`) and locked
    (:class:`RunDirLock`) for the ``with`` body. When the body fails before writing anything
    into a directory made here (bad input found while building the run), the directories
    made here are removed again, so bad input leaves nothing behind."""
    run_dir = Path(run_dir)
    created = ensure_writable_dir(run_dir, flag)
    lock = RunDirLock(run_dir)
    with lock:
        try:
            yield run_dir
        except BaseException:
            if created is not None and {p.name for p in run_dir.iterdir()} <= {LOCK_FILE}:
                lock.remove()
                for d in (run_dir, *run_dir.parents):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                    if d == created:
                        break
            raise


# ----------------------------------------------------------------------------- lifecycle

Summarize = Callable[[list[dict[str, Any]]], dict[str, Any]]


class RunRecorder:
    """The lifecycle of one run directory: resume state, per-epoch files, status.

    The caller owns the computation (its epoch loop, model, printing); the recorder owns what
    reaches the disk and when, so the search runner and the evaluation stage cannot drift
    apart in how they resume, checkpoint, detect divergence or record an interruption.

    ``summary`` is the caller's document (its first keys fixed by the caller); every
    :meth:`finish` updates it in place with ``status``, ``epochs_done``, ``wall_time_s``,
    then ``summarize(history)`` (the caller's headline numbers, e.g. final/best test error),
    then the extra fields, and writes it atomically to ``summary_path``. Keys keep their first
    position, so the document's layout is stable from the first ``running`` write on.

    One run, in the order the search runner uses it::

        previous = refuse_existing(summary_path, resume)   # RunDirError without resume
        if is_done(previous):
            return run_dir                                 # finished/diverged: never repeated
        rec = RunRecorder(summary_path, metrics_path, checkpoint_path, doc, summarize)
        state = rec.restore(device) if resume else None    # sets history, wall, start_epoch
        if state is not None:
            model.load_state_dict(state["model"]); ...
        rec.finish(RUNNING)
        with rec.guard():                                  # Ctrl-C -> interrupted, raise -> failed
            for epoch in range(rec.start_epoch, epochs):
                t0 = time.perf_counter()
                row = train_one_epoch(epoch)
                rec.wall += time.perf_counter() - t0
                if rec.diverged(row, epoch):               # writes status "diverged"
                    return run_dir
                row["wall_time_s"] = round(rec.wall, 3)
                rec.record_epoch(row, {"model": model.state_dict(), ...},
                                 files={GENOTYPES_FILE: text})   # extra files: optional
        rec.finish(FINISHED)

    The evaluation stage (:func:`nasbench_eval.evaluation.evaluate`) uses it over its own file
    names, with the files and bytes ``train.evaluate`` wrote at 3e5e372:

    * its settings-fingerprint check ("other settings") first, then
      ``refuse_existing(doc_path, resume, what="this evaluation", hint="")`` and
      ``if is_done(previous): return out_dir``;
    * ``RunRecorder(out_dir / "evaluation.json", out_dir / "evaluation_metrics.csv",
      out_dir / "evaluation_checkpoint.pt", doc, summarize, fingerprint=fp)``: ``doc`` is the
      evaluation document (its ``status`` key in place), ``summarize`` gives
      ``final_test_error``, ``final_train_error``, ``best_test_error`` and ``curve``;
      ``fingerprint=fp`` (the evaluation id's hash) is stored in the checkpoint and makes
      :meth:`restore` refuse another evaluation's;
    * ``doc["environment"]`` (and ``doc["resumed"]`` after a resumption) set after
      :meth:`restore`, before the first :meth:`finish`, so the keys keep their order;
    * the loop above with state ``{"model": ..., "optimizer": ...}``, no extra files, and
      ``rec.guard(record_failures=False)``: an exception leaves ``running`` as evaluations
      always have (the search records ``failed``).
    """

    def __init__(self, summary_path: str | Path, metrics_path: str | Path,
                 checkpoint_path: str | Path, summary: dict[str, Any], summarize: Summarize,
                 *, fingerprint: str | None = None) -> None:
        self.summary_path = Path(summary_path)
        self.metrics_path = Path(metrics_path)
        self.checkpoint_path = Path(checkpoint_path)
        self.summary = summary
        self.summarize = summarize
        self.fingerprint = fingerprint
        self.history: list[dict[str, Any]] = []
        self.wall = 0.0
        self.start_epoch = 0
        self.status: str | None = None

    @classmethod
    def for_search(cls, run_dir: str | Path, summary: dict[str, Any],
                   summarize: Summarize) -> RunRecorder:
        """A recorder over a search run directory's file names."""
        d = Path(run_dir)
        return cls(d / SUMMARY_FILE, d / METRICS_FILE, d / CHECKPOINT_FILE, summary, summarize)

    @property
    def dir(self) -> Path:
        return self.summary_path.parent

    def restore(self, device: Any) -> dict[str, Any] | None:
        """Load the last checkpoint, if any: history, wall time and the epoch to continue at
        are taken over; the returned state holds the caller's entries (``model``, ...)."""
        if not self.checkpoint_path.exists():
            return None
        try:
            state = load_checkpoint(self.checkpoint_path, device)
            if not isinstance(state, dict) or not {"epoch", "history", "wall_time_s"} <= set(state):
                raise ValueError("not a checkpoint of this format")
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a damaged file
            self._unreadable_checkpoint(exc)
        if self.fingerprint is not None and state.get("fingerprint") != self.fingerprint:
            raise RunDirError(f"{self.checkpoint_path} belongs to another run; delete it to "
                              f"start over")
        self.history, self.wall = state["history"], state["wall_time_s"]
        self.start_epoch = state["epoch"]
        return state

    def _unreadable_checkpoint(self, exc: BaseException) -> NoReturn:
        """A checkpoint that does not load (truncated, empty, random bytes): moved aside (never
        deleted), the run recorded ``failed`` with the reason, and a :class:`RunDirError`
        saying how to go on. Only the latest checkpoint is kept, so the way on is the same
        run from epoch 0, which recomputes the lost epochs exactly (randomness derives from
        (seed, epoch))."""
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
        aside = self.checkpoint_path.with_name(f"{self.checkpoint_path.name}.unreadable-{stamp}"
                                               f"-{uuid.uuid4().hex[:6]}")
        os.replace(self.checkpoint_path, aside)
        reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:200]
        msg = (f"{self.checkpoint_path} is unreadable ({reason}); it was moved to {aside.name} "
               f"(kept, not deleted). Only the latest checkpoint is kept, so this run cannot "
               f"continue from its last epoch: rerun the same command with --resume to run it "
               f"again from epoch 0 in this directory (the same epochs are recomputed exactly), "
               f"or move the directory aside to start from scratch elsewhere")
        self.finish(FAILED, error=msg)
        raise RunDirError(msg) from None

    def finish(self, status: str, **extra: Any) -> None:
        """Record ``status`` (one of :data:`STATUSES`) and the current numbers."""
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}; valid: {', '.join(STATUSES)}")
        self.status = status
        self.summary.update(status=status, epochs_done=len(self.history),
                            wall_time_s=round(self.wall, 3), **self.summarize(self.history),
                            **extra)
        write_json(self.summary_path, self.summary)

    def diverged(self, row: Mapping[str, Any], epoch: int, elapsed: float = 0.0) -> bool:
        """True (and status ``diverged`` written) when a loss of ``row`` is not finite.

        ``elapsed``: time of this epoch not yet added to :attr:`wall`, counted only when the
        run ends here (the search adds an epoch's time after scoring it)."""
        bad = nonfinite_losses(row)
        if bad:
            self.wall += elapsed
            self.finish(DIVERGED, diverged_at_epoch=epoch,
                        error=f"non-finite loss in epoch {epoch}: "
                              + ", ".join(f"{k}={v}" for k, v in bad.items()))
        return bool(bad)

    def record_epoch(self, row: dict[str, Any], state: dict[str, Any],
                     files: Mapping[str, str] | None = None) -> None:
        """Append ``row``; write the checkpoint (``epoch``, the caller's ``state``, history,
        wall time, fingerprint), the metrics CSV, the ``files`` (name -> text, e.g. the
        genotypes) and the summary (status ``running``), each atomically. A crash loses at
        most the epoch in progress."""
        self.history.append(row)
        ckpt = {"epoch": row["epoch"] + 1, **state, "history": self.history,
                "wall_time_s": self.wall}
        if self.fingerprint is not None:
            ckpt["fingerprint"] = self.fingerprint
        save_checkpoint(self.checkpoint_path, ckpt)
        write_metrics(self.metrics_path, self.history)
        for name, text in (files or {}).items():
            atomic_write(self.dir / name, text)
        self.finish(RUNNING)

    @contextlib.contextmanager
    def guard(self, record_failures: bool = True) -> Iterator[RunRecorder]:
        """Ctrl-C records ``interrupted``; an exception records ``failed`` with its message
        (when ``record_failures``) so a sweep or a reader sees it. Both are re-raised."""
        try:
            yield self
        except KeyboardInterrupt:
            self.finish(INTERRUPTED)
            raise
        except Exception as exc:
            if record_failures:
                self.finish(FAILED, error=f"{type(exc).__name__}: {exc}")
            raise


__all__ = ["CHECKPOINT_FILE", "CONFIG_FILE", "DIVERGED", "DONE", "FAILED", "FINISHED",
           "GENOTYPES_FILE", "INTERRUPTED", "LOCK_FILE", "METRICS_FILE", "RUNNING", "RUN_FILES",
           "RUN_LOG_FILE", "STATUSES", "SUMMARY_FILE", "RunDirLock", "RunRecorder",
           "atomic_write", "claim_run_dir", "derived_seed", "ensure_writable_dir", "environment",
           "fingerprint", "git_commit", "is_done", "is_finite", "load_checkpoint",
           "nonfinite_losses", "read_json", "read_summary", "refuse_existing", "save_checkpoint",
           "write_json", "write_jsonl", "write_metrics", "write_summary"]
