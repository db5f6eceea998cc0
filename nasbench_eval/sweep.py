"""Sweeps: grids of runs (method x space x dataset x seed) and the executors that run them.

A sweep is nothing but many ordinary runs plus an index. Every cell of the grid is a
:class:`~nasbench_eval.config.RunConfig`, run by :func:`nasbench_eval.runner.run` into
``<out>/<run-id>/`` with the runner's deterministic run id, so a cell always names the same
directory, a rerun finds it, and two sweeps that share a cell share its run.

The index is ``<out>/sweeps/<sweep-id>.json`` (the "sweep.json" of the docs): the grid, every
cell with its run id, path, status and error, and the times it was created and updated. The
sweep id is derived from the cells' run ids, so the same grid always has the same index.

Executors (all drive :func:`run_cell`, which calls ``run(cfg, resume=True)``):

* :class:`LocalExecutor` without GPUs runs the cells one after another in this process, or
  with ``workers=N`` in N worker processes of ``cpus_per_run`` threads each (default 1): tiny
  CPU searches are bound by per-op overhead, not compute, so N single-threaded runs on N
  cores finish N times as many searches as one run with N threads (measured: 2 x 1 thread
  on 2 cores, each epoch as fast as alone), while two runs with 2 threads each thrash;
* :class:`LocalExecutor` with ``gpus=N`` keeps N worker processes busy, one per GPU
  (``CUDA_VISIBLE_DEVICES`` per worker);
* :class:`RayExecutor` submits every cell as a Ray task (``num_gpus=1`` with GPUs, else
  ``num_cpus``) to a cluster (``ray_address``) or a local Ray instance.

Rerunning a sweep skips finished and diverged runs, resumes interrupted ones from their
checkpoints and never starts a run twice; a run that raises is recorded with its error and
the others go on. Everything is validated before the first run starts.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from .config import RunConfig
from .errors import NasbenchEvalError

__all__ = ["Cell", "LocalExecutor", "RayExecutor", "SweepError", "SweepSpec", "load_sweep_file",
           "parse_seeds", "plan_sweep", "print_summary", "run_cell", "run_sweep",
           "sweep_index_path", "validate"]

GRID_KEYS = ("methods", "spaces", "datasets", "seeds")
# RunConfig fields that a sweep sets itself, per cell or for all of them
_OWN_FIELDS = {"method", "space", "dataset", "seed", "method_options", "out", "progress"}
SETTING_FIELDS = tuple(f.name for f in fields(RunConfig) if f.name not in _OWN_FIELDS)
EXECUTOR_KEYS = ("executor", "gpus", "ray_address", "cpus_per_run", "workers")
FILE_KEYS = ("name", *GRID_KEYS, "out", "options", *SETTING_FIELDS, *EXECUTOR_KEYS)
EXECUTORS = ("local", "ray")
DONE = ("finished", "diverged")
RAY_MISSING = ("the ray executor needs Ray, which is not installed here: "
               "pip install 'nasbench-eval[ray]'")

Emit = Callable[["Cell", str, dict[str, Any]], None]


class SweepError(NasbenchEvalError):
    """A sweep grid, sweep file or executor setting is invalid (raised before any run starts)."""


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- grid

_SEED = re.compile(r"^\d+$")
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


def parse_seeds(value: Any, where: str = "seeds") -> list[int]:
    """``"0-9"``, ``"0,2,5"``, ``"3"``, ``"0-4,10"``, an int or a list of ints -> seeds, in order,
    without repeats. An empty range (``"5-3"``) or no seed at all is an error."""
    if isinstance(value, bool):
        raise SweepError(f"{where}: expected seeds such as 0-9, 0,2,5 or 3, got {value!r}")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SweepError(f"{where}: expected seeds such as 0-9, 0,2,5 or 3, got {value!r}")
    seeds: list[int] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            if item < 0:
                raise SweepError(f"{where}: seeds must be >= 0, got {item}")
            seeds.append(item)
            continue
        text = str(item).strip()
        if _SEED.match(text):
            seeds.append(int(text))
        elif m := _RANGE.match(text):
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise SweepError(f"{where}: empty seed range '{text}' ({lo} > {hi}); "
                                 f"write it low-high, e.g. {hi}-{lo}")
            seeds.extend(range(lo, hi + 1))
        else:
            raise SweepError(f"{where}: '{text}' is not a seed (>= 0) or a range a-b; "
                             f"use e.g. 0-9, 0,2,5 or 3")
    if not seeds:
        raise SweepError(f"{where}: no seeds given (empty seed list)")
    return list(dict.fromkeys(seeds))


def _names(value: Any, where: str) -> list[str]:
    """A comma-separated string or a list of strings -> names, in order, without repeats."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise SweepError(f"{where}: expected a list of names or a comma-separated string, "
                         f"got {value!r}")
    items = [v for v in items if v]
    if not items:
        raise SweepError(f"{where}: empty (give at least one)")
    return list(dict.fromkeys(items))


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class SweepSpec:
    """What a sweep runs: the four axes, settings shared by every cell, method options.

    ``settings`` are :class:`RunConfig` fields (``epochs``, ``layers``, ...); ``options`` are
    method options, each given to the methods of the grid that declare it (so a method whose
    run id does not involve an option gets the same run as without it). ``origins`` says
    where each field came from, for error messages (``--methods``, ``sweep.toml: field ...``).
    """

    methods: list[str]
    spaces: list[str]
    datasets: list[str] = field(default_factory=lambda: [RunConfig().dataset])
    seeds: list[int] = field(default_factory=lambda: [0])
    settings: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    out: str = "results"
    name: str = "sweep"
    origins: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, methods: Any = None, spaces: Any = None, datasets: Any = None,
               seeds: Any = None, *, options: dict[str, Any] | None = None,
               out: str | os.PathLike | None = None, name: str | None = None,
               origins: dict[str, str] | None = None, **settings: Any) -> SweepSpec:
        """Build a spec from loose values (lists or comma-separated strings, seed syntax)."""
        origins = dict(origins or {})
        where = lambda key: origins.get(key, key)  # noqa: E731
        spec = cls(methods=[] if methods is None else _names(methods, where("methods")),
                   spaces=[] if spaces is None else _names(spaces, where("spaces")),
                   options=dict(options or {}), settings=dict(settings), origins=origins)
        if datasets is not None:
            spec.datasets = _names(datasets, where("datasets"))
        if seeds is not None:
            spec.seeds = parse_seeds(seeds, where("seeds"))
        if out is not None:
            spec.out = os.fspath(out)
        if name is not None:
            if not isinstance(name, str) or not _NAME.match(name):
                raise SweepError(f"{where('name')}: {name!r} is not a usable sweep name "
                                 f"(letters, digits, '_', '.', '-')")
            spec.name = name
        return spec

    def where(self, key: str) -> str:
        return self.origins.get(key, key)

    def grid(self) -> dict[str, Any]:
        return {"methods": self.methods, "spaces": self.spaces, "datasets": self.datasets,
                "seeds": self.seeds, "settings": self.settings, "options": self.options}


@dataclass(frozen=True)
class Cell:
    """One run of the grid: its position and its (resolved) configuration."""

    index: int
    config: RunConfig

    @property
    def run_id(self) -> str:
        return self.config.run_id()

    @property
    def path(self) -> Path:
        return Path(self.config.out) / self.run_id

    def label(self) -> dict[str, Any]:
        c = self.config
        return {"method": c.method, "space": c.space, "dataset": c.dataset, "seed": c.seed}


_FIELD_TYPES = {f.name: str(f.type) for f in fields(RunConfig)}


def _setting_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the RunConfig setting ``name`` (None: it can)."""
    ann = _FIELD_TYPES[name]
    if value is None:
        return None if "None" in ann else "must be given a value"
    base = ann.split("|")[0].strip()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    checks = {
        "bool": (isinstance(value, bool), "true or false"),
        "int": (isinstance(value, int) and not isinstance(value, bool), "an integer"),
        "float": (number, "a number"),
        "str": (isinstance(value, str), "a string"),
    }
    if base in checks:
        ok, what = checks[base]
    elif base.startswith("tuple"):
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        what = "a pair of numbers"
    elif base.startswith("dict"):
        ok, what = isinstance(value, dict), "a table of options"
    else:  # pragma: no cover - a field type this check does not know
        ok, what = True, ""
    if not ok:
        return f"expected {what}, got {value!r}"
    try:
        RunConfig(**{name: value})
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def _option_problem(default: Any, value: Any) -> str | None:
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"expected true or false, got {value!r}"
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected an integer, got {value!r}"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"expected a number, got {value!r}"
    return None


def validate(spec: SweepSpec) -> list[Cell]:
    """Check every name, setting, option and method/space pair; return the grid's cells.

    Raises :class:`SweepError` listing every problem (each naming the offending entry), so a
    bad grid fails before anything is created.
    """
    from .data import DATASETS
    from .errors import unknown
    from .methods import method_class
    from .oracles import create_oracle
    from .resolve import resolve_config
    from .spaces import load_space

    problems: list[str] = []
    for key in ("methods", "spaces"):
        if not getattr(spec, key):
            problems.append(f"{spec.where(key)}: missing; name at least one "
                            f"(--{key} a,b or '{key}' in a sweep file)")
    classes: dict[str, type] = {}
    for m in spec.methods:
        try:
            classes[m] = method_class(m)
        except NasbenchEvalError as exc:
            problems.append(f"{spec.where('methods')}: {exc}")
    spaces: dict[str, Any] = {}
    for s in spec.spaces:
        try:
            spaces[s] = load_space(s)
        except NasbenchEvalError as exc:
            problems.append(f"{spec.where('spaces')}: {exc}")
    for d in spec.datasets:
        if d not in DATASETS:  # checked by name: loading would download
            problems.append(f"{spec.where('datasets')}: {unknown('dataset', d, DATASETS)}")
    for key, value in spec.settings.items():
        if key not in SETTING_FIELDS:
            why = ("is set by the grid, use "
                   f"{'options' if key == 'method_options' else key + 's'}"
                   if key in _OWN_FIELDS - {"out", "progress"} else
                   f"unknown setting; valid settings: {', '.join(SETTING_FIELDS)}")
            problems.append(f"{spec.where(key)}: {why}")
        elif (why := _setting_problem(key, value)) is not None:
            problems.append(f"{spec.where(key)}: {why}")
    if "oracle" in spec.settings and isinstance(spec.settings["oracle"], str):
        try:
            create_oracle(spec.settings["oracle"])
        except NasbenchEvalError as exc:
            problems.append(f"{spec.where('oracle')}: {exc}")
    for opt, value in spec.options.items():
        takers = [m for m, cls in classes.items() if opt in getattr(cls, "options", {})]
        if not takers and classes:
            offered = sorted({o for cls in classes.values() for o in getattr(cls, "options", {})})
            problems.append(
                f"{spec.where('options')}: option '{opt}' belongs to no method of this sweep "
                f"({', '.join(classes)}); their options: {', '.join(offered) or '(none)'}")
        for m in takers[:1]:
            if (why := _option_problem(classes[m].options[opt].default, value)) is not None:
                problems.append(f"{spec.where('options')}: option '{opt}': {why}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. msr's note on dropped ops: shown when it runs
        for m, cls in classes.items():
            for s, space in spaces.items():
                try:
                    cls().adapt_space(space)
                except NasbenchEvalError as exc:
                    problems.append(f"method '{m}' does not apply to space '{s}': {exc}")
    if problems:
        head = ("invalid sweep grid: " if len(problems) == 1 else
                f"invalid sweep grid ({len(problems)} problems):\n  - ")
        raise SweepError(head + "\n  - ".join(problems))

    cells = []
    for i, (m, s, d, seed) in enumerate(itertools.product(spec.methods, spec.spaces,
                                                           spec.datasets, spec.seeds)):
        opts = {k: v for k, v in spec.options.items() if k in getattr(classes[m], "options", {})}
        try:
            cfg = resolve_config(RunConfig(method=m, space=s, dataset=d, seed=seed,
                                           method_options=opts, out=spec.out, progress=False,
                                           **spec.settings))
        except (ValueError, TypeError) as exc:  # pragma: no cover - caught per setting above
            raise SweepError(f"invalid sweep grid: {exc}") from None
        cells.append(Cell(i, cfg))
    return cells


def sweep_id(spec: SweepSpec, cells: Iterable[Cell]) -> str:
    """``<name>-<hash of the cells' run ids>``: the same grid always has the same id."""
    digest = hashlib.sha1("\n".join(sorted(c.run_id for c in cells)).encode()).hexdigest()
    return f"{spec.name}-{digest[:8]}"


def sweep_index_path(out: str | os.PathLike, sweep: str) -> Path:
    return Path(out) / "sweeps" / f"{sweep}.json"


# ----------------------------------------------------------------------------- sweep files

def load_sweep_file(path: str | os.PathLike) -> tuple[SweepSpec, dict[str, Any]]:
    """Read a TOML (or, with PyYAML installed, YAML) sweep file.

    Returns the spec and the executor settings it names (``executor``, ``gpus``,
    ``ray_address``, ``cpus_per_run``). Every problem names the file and the field.
    """
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"sweep file {p} not found")
    text = p.read_text()
    suffix = p.suffix.lower()
    if suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SweepError(f"{p}: not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SweepError(f"{p}: YAML sweep files need PyYAML (pip install pyyaml); "
                             f"or write the sweep as TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SweepError(f"{p}: not valid YAML: {exc}") from None
    else:
        raise SweepError(f"{p}: a sweep file must end in .toml (or .yaml / .yml)")
    if not isinstance(data, dict):
        raise SweepError(f"{p}: expected a table of fields at the top level")

    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    origins = {k: f"{p}: field '{k}'" for k in (*FILE_KEYS, "method_options")}
    for key in data:
        if key not in FILE_KEYS:
            raise SweepError(f"{p}: field '{key}': unknown field; valid fields: "
                             f"{', '.join(FILE_KEYS)}")
    options = data.pop("options", {})
    if not isinstance(options, dict):
        raise SweepError(f"{p}: field 'options': expected a table of method options "
                         f"([options] pgd_steps = 1), got {options!r}")
    options = {str(k).replace("-", "_"): v for k, v in options.items()}
    for key in ("out", "name"):
        if key in data and not isinstance(data[key], str):
            raise SweepError(f"{p}: field '{key}': expected a string, got {data[key]!r}")
    executor = {k: data.pop(k) for k in EXECUTOR_KEYS if k in data}
    _check_executor_settings(executor, lambda k: origins[k])
    grid = {k: data.pop(k) for k in ("name", *GRID_KEYS, "out") if k in data}
    spec = SweepSpec.create(**grid, options=options, origins=origins, **data)
    return spec, executor


def _check_executor_settings(ex: dict[str, Any], where: Callable[[str], str]) -> None:
    if "executor" in ex and ex["executor"] not in EXECUTORS:
        raise SweepError(f"{where('executor')}: unknown executor {ex['executor']!r}; "
                         f"valid choices: {', '.join(EXECUTORS)}")
    for key, low in (("gpus", 0), ("cpus_per_run", 1), ("workers", 1)):
        v = ex.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
            raise SweepError(f"{where(key)}: expected an integer >= {low}, got {v!r}")
    v = ex.get("ray_address")
    if v is not None and not isinstance(v, str):
        raise SweepError(f"{where('ray_address')}: expected a string (e.g. auto or "
                         f"ray://host:10001), got {v!r}")


# ----------------------------------------------------------------------------- one run

def run_cell(config: dict[str, Any], threads: int | None = None,
             on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run (or resume, or skip when done) one cell; never raises for a failing run.

    Returns ``{"status", "error", "traceback", "epochs_done", "final_test_error"}`` where status
    is the run's (``finished``/``diverged``) or ``failed`` when it raised. Used in-process by
    the local executor, in worker processes (GPUs) and as the body of a Ray task.
    """
    import torch

    from .runner import read_summary, run

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        cfg = RunConfig.from_dict(config)
        run_dir = run(cfg, resume=True, on_epoch_end=on_epoch_end)
        summary = read_summary(run_dir) or {}
        return {"status": summary.get("status", "failed"), "error": summary.get("error"),
                "traceback": None, "epochs_done": summary.get("epochs_done"),
                "final_test_error": summary.get("final_test_error")}
    except Exception as exc:  # noqa: BLE001 - recorded in the index, the sweep goes on
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(), "epochs_done": None,
                "final_test_error": None}
    finally:
        if threads:
            torch.set_num_threads(previous_threads)


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return None


def _failed(error: str) -> dict[str, Any]:
    return {"status": "failed", "error": error, "traceback": None, "epochs_done": None,
            "final_test_error": None}


def _interrupted() -> dict[str, Any]:
    return {"status": "interrupted", "error": "interrupted (rerun the sweep to resume)",
            "traceback": None, "epochs_done": None, "final_test_error": None}


class _SummaryWatch:
    """Epoch progress of runs in other processes, read from their summary.json."""

    def __init__(self) -> None:
        self.seen: dict[int, tuple[int, float]] = {}

    def poll(self, cell: Cell, since: float, emit: Emit) -> None:
        p = cell.path / "summary.json"
        try:
            mtime = p.stat().st_mtime
        except OSError:
            return
        last_epochs, last_mtime = self.seen.get(cell.index, (-1, 0.0))
        if mtime < since - 1 or mtime == last_mtime:
            return
        s = _read_summary(cell.path)
        if not s:
            return
        if cell.index not in self.seen:
            emit(cell, "running", {})
        done = s.get("epochs_done") or 0
        self.seen[cell.index] = (done, mtime)
        if done > max(last_epochs, 0) and s.get("status") == "running":
            emit(cell, "epoch", {"epochs_done": done, "test_error": s.get("final_test_error")})


# ----------------------------------------------------------------------------- executors

class LocalExecutor:
    """This machine. Without GPUs: one run after another, in this process, or with
    ``workers=N`` up to N worker processes at a time (CPU; ``cpus_per_run`` threads each,
    default 1). With ``gpus=N``: up to N worker processes at a time, each seeing one GPU
    (``CUDA_VISIBLE_DEVICES``).

    ``cpus_per_run`` sets torch's CPU threads for each run (default: torch's own choice).
    ``gpu_ids`` overrides the devices given to the workers (default ``0..N-1``).
    """

    name = "local"

    def __init__(self, gpus: int = 0, cpus_per_run: int | None = None,
                 gpu_ids: list[str] | None = None, poll_s: float = 0.5,
                 workers: int | None = None) -> None:
        if gpus and workers:
            raise SweepError("workers is for CPU sweeps; with --gpus N there is one worker "
                             "per GPU already")
        self.gpus = gpus
        self.workers = workers if workers and workers > 1 else None
        self.cpus_per_run = cpus_per_run if cpus_per_run or not self.workers else 1
        self.gpu_ids = gpu_ids
        self.poll_s = poll_s

    def check(self) -> None:
        if self.gpus and self.gpu_ids is None:
            import torch

            have = torch.cuda.device_count()
            if self.gpus > have:
                raise SweepError(f"--gpus {self.gpus}: this machine has {have} CUDA GPU(s)")

    def execute(self, cells: list[Cell], emit: Emit) -> None:
        if self.gpus or self.gpu_ids or self.workers:
            self._pool(cells, emit)
        else:
            self._sequential(cells, emit)

    def _sequential(self, cells: list[Cell], emit: Emit) -> None:
        for cell in cells:
            emit(cell, "running", {})

            def epoch_end(epoch: int, row: dict[str, Any], cell: Cell = cell) -> None:
                emit(cell, "epoch", {"epochs_done": epoch + 1,
                                     "test_error": row.get("anytime_test_error")})

            try:
                result = run_cell(cell.config.to_dict(), self.cpus_per_run, epoch_end)
            except KeyboardInterrupt:
                emit(cell, "end", _interrupted())
                raise
            emit(cell, "end", result)
            _release_memory()

    def _pool(self, cells: list[Cell], emit: Emit) -> None:
        if self.workers:  # CPU slots: the workers keep the caller's environment
            devices = [f"cpu{i}" for i in range(self.workers)]
        else:
            devices = list(self.gpu_ids if self.gpu_ids is not None
                           else [str(i) for i in range(self.gpus)])
        queue, free = deque(cells), list(devices)
        active: dict[subprocess.Popen, tuple[Cell, str, Path, float]] = {}
        watch = _SummaryWatch()
        tmp = Path(tempfile.mkdtemp(prefix="nasbench-sweep-"))
        try:
            while queue or active:
                while queue and free:
                    cell, device = queue.popleft(), free.pop(0)
                    job, result = tmp / f"{cell.index}.job.json", tmp / f"{cell.index}.result.json"
                    job.write_text(json.dumps({"config": cell.config.to_dict(),
                                               "threads": self.cpus_per_run}))
                    env = (dict(os.environ) if device.startswith("cpu")
                           else {**os.environ, "CUDA_VISIBLE_DEVICES": device})
                    proc = subprocess.Popen(
                        [sys.executable, "-c",
                         "from nasbench_eval.sweep import _worker_main; _worker_main()",
                         str(job), str(result)], env=env)
                    active[proc] = (cell, device, result, time.time())
                    emit(cell, "queued", {"device": device})
                time.sleep(self.poll_s)
                for proc, (cell, device, result, since) in list(active.items()):
                    watch.poll(cell, since, emit)
                    code = proc.poll()
                    if code is None:
                        continue
                    try:
                        outcome = json.loads(result.read_text())
                    except (OSError, ValueError):
                        outcome = _failed(f"worker process exited with code {code} "
                                          f"before reporting a result")
                    emit(cell, "end", outcome)
                    free.append(device)
                    del active[proc]
        except KeyboardInterrupt:
            # the workers got the same Ctrl-C (one process group): their runs mark themselves
            # interrupted; give them a moment, then make sure none outlives the sweep
            deadline = time.time() + 30
            for proc, (cell, *_rest) in active.items():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.time()))
                except subprocess.TimeoutExpired:
                    proc.kill()
                emit(cell, "end", _interrupted())
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _release_memory() -> None:
    import gc

    gc.collect()
    import torch

    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _exit_with_parent() -> None:
    """A worker must not outlive the sweep that started it (no run may be driven twice)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_main(argv: list[str] | None = None) -> None:
    """Entry point of a local GPU worker: run one cell, write its outcome as JSON."""
    job_path, result_path = (argv if argv is not None else sys.argv[1:])[:2]
    _exit_with_parent()
    job = json.loads(Path(job_path).read_text())
    outcome = run_cell(job["config"], job.get("threads"))
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(outcome))
    os.replace(tmp, result_path)


def _ray_task(config: dict[str, Any], threads: int) -> dict[str, Any]:
    """Body of a Ray task: one run with ``threads`` torch threads (the CPUs Ray gave it)."""
    return run_cell(config, threads)


def import_ray():
    try:
        import ray
    except ImportError:
        raise SweepError(RAY_MISSING) from None
    return ray


class RayExecutor:
    """Each cell a Ray task: ``num_gpus=1`` when ``gpus`` > 0 (at most ``gpus`` at a time),
    else ``num_cpus=cpus_per_run`` (default 1) with as many torch threads.

    Connects to ``address`` (``auto``, ``ray://host:10001``, ...), or to the Ray instance this
    process already initialised, or starts a local one (shut down again at the end). Run
    directories are written by the workers, so on a cluster ``out`` must be a shared path.
    """

    name = "ray"

    def __init__(self, address: str | None = None, gpus: int = 0,
                 cpus_per_run: int | None = None, poll_s: float = 1.0) -> None:
        self.address = address
        self.gpus = gpus
        self.cpus_per_run = cpus_per_run or 1
        self.poll_s = poll_s

    def check(self) -> None:
        import_ray()

    def execute(self, cells: list[Cell], emit: Emit) -> None:
        ray = import_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address)
        try:
            self._execute(ray, cells, emit)
        finally:
            if started_here:
                ray.shutdown()

    def _execute(self, ray, cells: list[Cell], emit: Emit) -> None:
        resources = ray.cluster_resources()
        if self.gpus and resources.get("GPU", 0) < 1:
            raise SweepError("GPUs were requested (--gpus) but the Ray cluster has none")
        if resources.get("CPU", 0) < self.cpus_per_run:
            raise SweepError(f"each run asks for {self.cpus_per_run} CPU(s) but the Ray "
                             f"cluster has {resources.get('CPU', 0):g}")
        task = ray.remote(_ray_task).options(
            num_cpus=self.cpus_per_run, num_gpus=1 if self.gpus else 0, retry_exceptions=False)
        limit = self.gpus or len(cells)
        queue: deque[Cell] = deque(cells)
        inflight: dict[Any, tuple[Cell, float]] = {}
        watch = _SummaryWatch()
        try:
            while queue or inflight:
                while queue and len(inflight) < limit:
                    cell = queue.popleft()
                    abs_cfg = {**cell.config.to_dict(),
                               "out": str(Path(cell.config.out).resolve())}
                    inflight[task.remote(abs_cfg, self.cpus_per_run)] = (cell, time.time())
                    emit(cell, "queued", {})
                done, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    cell, _since = inflight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        outcome = _failed(f"{type(exc).__name__}: {str(exc).strip()[-2000:]}")
                    emit(cell, "end", outcome)
                for cell, since in inflight.values():
                    watch.poll(cell, since, emit)
        except KeyboardInterrupt:
            for ref, (cell, _since) in inflight.items():
                ray.cancel(ref)  # KeyboardInterrupt in the task: the run marks itself interrupted
                emit(cell, "end", _interrupted())
            raise


# ----------------------------------------------------------------------------- progress

_COLUMNS = ("#", "run id", "status", "epochs", "test err", "time")


class ProgressTable:
    """A live table on a terminal; one line per event otherwise (readable in logs)."""

    def __init__(self, cells: list[Cell], stream: TextIO, quiet: bool = False,
                 live: bool | None = None) -> None:
        self.cells = cells
        self.stream = stream
        self.quiet = quiet
        self.live = (stream.isatty() if live is None else live) and not quiet
        self.rows: dict[int, dict[str, Any]] = {}
        self._drawn = 0
        self._last_draw = 0.0
        self._width = len(str(len(cells)))

    def set(self, cell: Cell, **row: Any) -> None:
        self.rows.setdefault(cell.index, {}).update(row)

    def event(self, cell: Cell, kind: str, text: str) -> None:
        if self.quiet:
            return
        if self.live:
            self.draw(force=kind in ("end", "running"))
        else:
            n = f"[{cell.index + 1:>{self._width}}/{len(self.cells)}]"
            print(f"{n} {cell.run_id}  {text}", file=self.stream, flush=True)

    def line(self, text: str) -> None:
        if self.live and self._drawn:
            self.draw(force=True)
        print(text, file=self.stream, flush=True)
        self._drawn = 0

    def _row(self, cell: Cell) -> tuple[str, ...]:
        r = self.rows.get(cell.index, {})
        err = r.get("test_error")
        took = r.get("time_s")
        return (str(cell.index + 1), cell.run_id, r.get("status", "pending"),
                f"{r.get('epochs_done') or 0}/{cell.config.epochs}",
                "" if err is None else f"{err:.4f}", "" if took is None else f"{took:.0f}s")

    def table(self, max_rows: int | None = None) -> list[str]:
        shown = self.cells
        if max_rows is not None and len(shown) > max_rows:  # too long: the active and failed
            active = [c for c in shown if self.rows.get(c.index, {}).get("status")
                      in ("running", "queued", "failed")]
            shown = sorted(active[:max_rows], key=lambda c: c.index)
        rows = [_COLUMNS] + [self._row(c) for c in shown]
        widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        counts: dict[str, int] = {}
        for c in self.cells:
            s = self.rows.get(c.index, {}).get("status", "pending")
            counts[s] = counts.get(s, 0) + 1
        lines.append(", ".join(f"{v} {k}" for k, v in counts.items()))
        return lines

    def draw(self, force: bool = False) -> None:
        if not force and time.time() - self._last_draw < 0.25:
            return
        size = shutil.get_terminal_size((100, 40))
        # one screen line per table line, or the cursor moves of the next redraw miss
        lines = [ln[:max(20, size.columns - 1)] for ln in self.table(max(3, size.lines - 4))]
        if self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)
        self._last_draw = time.time()


# ----------------------------------------------------------------------------- the index

class SweepIndex:
    """``<out>/sweeps/<sweep-id>.json``: written atomically by the one process driving the sweep."""

    def __init__(self, path: Path, doc: dict[str, Any]) -> None:
        self.path, self.doc = path, doc

    @classmethod
    def open(cls, spec: SweepSpec, sid: str, cells: list[Cell]) -> SweepIndex:
        path = sweep_index_path(spec.out, sid)
        old: dict[str, Any] = {}
        if path.exists():
            try:
                old = json.loads(path.read_text())
            except ValueError:
                old = {}
        old_cells = {c.get("run_id"): c for c in old.get("cells", [])}
        doc = {"sweep_id": sid, "name": spec.name, "created": old.get("created", _now()),
               "updated": _now(), "out": spec.out, "grid": spec.grid(),
               "size": len(cells), "counts": {}, "invocations": old.get("invocations", []),
               "cells": []}
        for cell in cells:
            prev = old_cells.get(cell.run_id, {})
            entry = {"index": cell.index, "run_id": cell.run_id, **cell.label(),
                     "path": str(cell.path), "status": "pending", "epochs": cell.config.epochs,
                     "epochs_done": 0, "final_test_error": None, "error": None,
                     "traceback": None, "attempts": prev.get("attempts", 0),
                     "started": prev.get("started"), "ended": prev.get("ended")}
            if prev.get("status") == "failed":  # keep the record until it is retried
                entry.update(status="failed", error=prev.get("error"),
                             traceback=prev.get("traceback"))
            summary = _read_summary(cell.path)
            if summary:
                status = summary.get("status")
                entry.update(epochs_done=summary.get("epochs_done") or 0,
                             final_test_error=summary.get("final_test_error"))
                if status in DONE:
                    entry.update(status=status, error=summary.get("error"), traceback=None)
                elif status == "failed":  # the runner recorded the exception itself
                    entry.update(status="failed", error=entry["error"] or summary.get("error"))
                elif entry["status"] != "failed":
                    entry["status"] = "interrupted"  # running or interrupted: nobody drives it
            doc["cells"].append(entry)
        index = cls(path, doc)
        return index

    def cell(self, cell: Cell) -> dict[str, Any]:
        return self.doc["cells"][cell.index]

    def save(self) -> None:
        self.doc["updated"] = _now()
        counts: dict[str, int] = {}
        for c in self.doc["cells"]:
            counts[c["status"]] = counts.get(c["status"], 0) + 1
        self.doc["counts"] = counts
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.doc, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)


class _Lock:
    """One driver per sweep (an advisory lock, released by the OS even on SIGKILL)."""

    def __init__(self, path: Path) -> None:
        self.path, self.fh = path, None

    def __enter__(self) -> _Lock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")  # noqa: SIM115
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.fh.close()
            raise SweepError(f"this sweep is already being run by another process "
                             f"(lock {self.path}); wait for it or stop it first") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fh is not None:
            self.fh.close()


# ----------------------------------------------------------------------------- driver

def plan_sweep(spec: SweepSpec) -> dict[str, Any]:
    """Validate the grid and say, for each cell, what a sweep would do now (no side effects)."""
    cells = validate(spec)
    sid = sweep_id(spec, cells)
    plan = []
    for cell in cells:
        summary = _read_summary(cell.path)
        status = (summary or {}).get("status")
        done = (summary or {}).get("epochs_done") or 0
        if status in DONE:
            action = f"skip ({status})"
        elif summary is not None and done:
            action = f"resume at epoch {done + 1}/{cell.config.epochs} ({status})"
        else:
            action = "run"
        plan.append({"index": cell.index, "run_id": cell.run_id, **cell.label(),
                     "path": str(cell.path), "action": action})
    return {"sweep_id": sid, "index": str(sweep_index_path(spec.out, sid)), "out": spec.out,
            "grid": spec.grid(), "size": len(cells), "cells": plan, "_cells": cells}


def _describe_grid(spec: SweepSpec, n: int) -> str:
    def count(k: str, vs: list) -> str:
        return f"{len(vs)} {k if len(vs) != 1 else k[:-1]}"

    axes = " x ".join(count(k, getattr(spec, k)) for k in GRID_KEYS)
    return f"{axes} = {n} run{'s' if n != 1 else ''}"


def _make_executor(executor: str, gpus: int, ray_address: str | None,
                   cpus_per_run: int | None, workers: int | None = None):
    if executor == "local":
        if ray_address:
            raise SweepError("--ray-address is only for --executor ray")
        return LocalExecutor(gpus=gpus, cpus_per_run=cpus_per_run, workers=workers)
    if workers:
        raise SweepError("workers is only for --executor local (Ray runs as many tasks as "
                         "the cluster has CPUs for)")
    if executor == "ray":
        return RayExecutor(address=ray_address, gpus=gpus, cpus_per_run=cpus_per_run)
    raise SweepError(f"unknown executor {executor!r}; valid choices: {', '.join(EXECUTORS)}")


def run_sweep(spec: SweepSpec | str | os.PathLike | None = None, *, executor: str | Any = None,
              gpus: int | None = None, ray_address: str | None = None,
              cpus_per_run: int | None = None, workers: int | None = None,
              dry_run: bool = False, quiet: bool = False,
              stream: TextIO | None = None, summary: bool = True, **grid: Any) -> dict[str, Any]:
    """Run a sweep and return its index (the content of ``<out>/sweeps/<sweep-id>.json``).

    ``spec`` is a :class:`SweepSpec`, the path of a sweep file, or None to build the grid
    from keyword arguments (which also override a sweep file's values)::

        run_sweep(methods="darts,sdarts-rs", spaces=["s2", "s3"], datasets="digits",
                  seeds="0-9", epochs=10, out="results")

    ``executor`` is ``"local"`` (default), ``"ray"`` or an executor object. With
    ``dry_run`` nothing is created or run; the plan is printed and returned.
    """
    stream = stream or sys.stdout
    file_exec: dict[str, Any] = {}
    if isinstance(spec, (str, os.PathLike)):
        spec, file_exec = load_sweep_file(spec)
    if spec is None:
        spec = SweepSpec.create(**grid)
    elif grid:
        spec = _override(spec, grid)
    gpus = gpus if gpus is not None else file_exec.get("gpus", 0)
    cpus_per_run = cpus_per_run if cpus_per_run is not None else file_exec.get("cpus_per_run")
    ray_address = ray_address if ray_address is not None else file_exec.get("ray_address")
    workers = workers if workers is not None else file_exec.get("workers")
    _check_executor_settings({"gpus": gpus, "cpus_per_run": cpus_per_run,
                              "ray_address": ray_address, "workers": workers},
                             lambda k: f"--{k.replace('_', '-')}")
    if executor is None or isinstance(executor, str):
        kind = executor or file_exec.get("executor", "local")
        ex = _make_executor(kind, gpus, ray_address, cpus_per_run, workers)
    else:
        ex = executor

    device = spec.settings.get("device", "auto")
    if gpus and device not in ("auto", "cuda", "cuda:0"):
        raise SweepError(f"{spec.where('device')} {device!r} cannot be combined with --gpus: each "
                         f"run is given one GPU, which it sees as cuda:0 (leave the device auto)")
    plan = plan_sweep(spec)
    cells: list[Cell] = plan.pop("_cells")
    if not dry_run:
        ex.check()  # Ray importable, enough GPUs: still before anything is created
    sid = plan["sweep_id"]
    say = (lambda text: None) if quiet and not dry_run else (
        lambda text: print(text, file=stream, flush=True))
    say(f"sweep {sid}: {_describe_grid(spec, len(cells))}, executor {ex.name}; "
        f"runs in {spec.out}/, index {plan['index']}")
    if dry_run:
        width = max(len(c["run_id"]) for c in plan["cells"])
        n = len(str(len(cells)))
        for c in plan["cells"]:
            say(f"  {c['index'] + 1:>{n}}  {c['run_id']:<{width}}  {c['action']}")
        acts = [c["action"].split()[0] for c in plan["cells"]]
        say(f"dry run: would run {acts.count('run')}, resume {acts.count('resume')}, "
            f"skip {acts.count('skip')}; nothing was started")
        return plan

    index_path = sweep_index_path(spec.out, sid)
    with _Lock(index_path.with_name(f".{sid}.lock")):
        index = SweepIndex.open(spec, sid, cells)
        todo = [c for c in cells if index.cell(c)["status"] not in DONE]
        skipped = len(cells) - len(todo)
        invocation = {"started": _now(), "ended": None, "executor": ex.name,
                      "to_run": len(todo), "skipped": skipped}
        index.doc["invocations"].append(invocation)
        index.save()
        table = ProgressTable(cells, stream, quiet=quiet)
        for c in cells:
            e = index.cell(c)
            table.set(c, status=e["status"], epochs_done=e["epochs_done"],
                      test_error=e["final_test_error"])
        if skipped:
            say(f"{skipped} of {len(cells)} runs already done (finished or diverged): skipped")
        started_at: dict[int, float] = {}
        attempted: set[int] = set()

        def emit(cell: Cell, kind: str, info: dict[str, Any]) -> None:
            entry = index.cell(cell)
            if kind in ("queued", "running"):
                if kind == "running" or cell.index not in started_at:
                    started_at[cell.index] = time.time()
                if cell.index not in attempted:  # one attempt per cell and invocation
                    attempted.add(cell.index)
                    entry["attempts"] = entry.get("attempts", 0) + 1
                    entry["started"] = _now()
                resumed = entry["epochs_done"]
                entry.update(status=kind, error=None, traceback=None)
                table.set(cell, status=kind)
                text = (kind + (f" (resuming after epoch {resumed}/{cell.config.epochs})"
                                if resumed else "")
                        + (f" (CUDA_VISIBLE_DEVICES={info['device']})" if "device" in info
                           else ""))
                table.event(cell, kind, text)
            elif kind == "epoch":
                entry.update(status="running", epochs_done=info["epochs_done"],
                             final_test_error=info.get("test_error"))
                table.set(cell, status="running", epochs_done=info["epochs_done"],
                          test_error=info.get("test_error"))
                err = info.get("test_error")
                table.event(cell, kind, f"epoch {info['epochs_done']}/{cell.config.epochs}"
                            + (f"  test_err {err:.4f}" if err is not None else ""))
                return  # no index write per epoch: summary.json of the run has it
            elif kind == "end":
                took = time.time() - started_at.get(cell.index, time.time())
                summary_doc = _read_summary(cell.path) or {}
                entry.update(status=info["status"], error=info.get("error"),
                             traceback=info.get("traceback"), ended=_now(),
                             epochs_done=summary_doc.get("epochs_done", entry["epochs_done"]) or 0,
                             final_test_error=summary_doc.get("final_test_error"))
                table.set(cell, status=info["status"], epochs_done=entry["epochs_done"],
                          test_error=entry["final_test_error"], time_s=took)
                done = sum(1 for e in index.doc["cells"] if e["status"] in DONE)
                err = entry["final_test_error"]
                detail = (f"  {entry['epochs_done']}/{cell.config.epochs} epochs"
                          + (f"  test_err {err:.4f}" if err is not None else "")
                          + f"  ({took:.1f} s; {done}/{len(cells)} done)")
                if info["status"] in ("failed", "diverged") and info.get("error"):
                    detail += f"\n      {info['status']}: {info['error']}"
                table.event(cell, kind, info["status"] + detail)
            index.save()

        try:
            ex.execute(todo, emit)
        except KeyboardInterrupt:
            invocation["ended"] = _now()
            invocation["interrupted"] = True
            index.save()
            table.line(f"sweep {sid} interrupted: rerun the same command to resume it "
                       f"(finished runs are skipped)")
            raise
        invocation["ended"] = _now()
        index.save()
        if table.live:
            table.line("")
    if summary and not quiet:
        print_summary(index.doc, stream)
    elif summary:
        print(_counts_line(index.doc), file=stream, flush=True)
    return index.doc


def _override(spec: SweepSpec, grid: dict[str, Any]) -> SweepSpec:
    """A copy of ``spec`` whose values the given loose ones (API keywords, CLI flags) replace."""
    grid = dict(grid)
    options = {**spec.options, **(grid.pop("options", None) or {})}
    origins = {**spec.origins, **{k: k for k in grid}, **(grid.pop("origins", None) or {})}
    base: dict[str, Any] = {"methods": spec.methods or None, "spaces": spec.spaces or None,
                            "datasets": spec.datasets, "seeds": spec.seeds, "out": spec.out,
                            "name": spec.name, **spec.settings, **grid}
    return SweepSpec.create(**base, options=options, origins=origins)


# ----------------------------------------------------------------------------- summary

def _counts_line(doc: dict[str, Any]) -> str:
    counts = doc.get("counts", {})
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    n = doc["size"]
    return (f"sweep {doc['sweep_id']}: {n} run{'s' if n != 1 else ''}: {parts}; "
            f"index {sweep_index_path(doc['out'], doc['sweep_id'])}")


def plain_table(doc: dict[str, Any]) -> str:
    """(method, space, dataset, seed, status, final_test_error) per cell, in grid order."""
    head = ("method", "space", "dataset", "seed", "status", "final_test_error")
    rows = [head] + [(c["method"], c["space"], c["dataset"], str(c["seed"]), c["status"],
                      "" if c.get("final_test_error") is None else f"{c['final_test_error']:.4f}")
                     for c in doc["cells"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def leaderboard_text(doc: dict[str, Any]) -> tuple[str | None, str | None]:
    """The analysis leaderboard of the grid's finished and diverged runs, when
    ``nasbench_eval.analysis`` provides ``load_runs``, ``leaderboard`` and
    ``format_leaderboard``; else ``(None, why)``."""
    import importlib

    try:
        analysis = importlib.import_module(f"{__package__}.analysis")
    except ImportError:
        return None, None
    if not all(hasattr(analysis, f) for f in ("load_runs", "leaderboard", "format_leaderboard")):
        return None, None
    paths = [c["path"] for c in doc["cells"]
             if c["status"] in DONE and (Path(c["path"]) / "summary.json").exists()]
    if not paths:
        return None, None
    try:
        runs = analysis.load_runs(paths)
        return analysis.format_leaderboard(analysis.leaderboard(runs, metric="final")), None
    except Exception as exc:  # noqa: BLE001 - the sweep itself succeeded: fall back
        return None, f"(leaderboard unavailable: {type(exc).__name__}: {exc})"


def print_summary(doc: dict[str, Any], stream: TextIO | None = None) -> None:
    """The leaderboard of the grid (or a plain table), failed runs, and the counts."""
    stream = stream or sys.stdout
    board, note = leaderboard_text(doc)
    print("", file=stream)
    if note:
        print(note, file=stream)
    print(board if board is not None else plain_table(doc), file=stream)
    for c in doc["cells"]:
        if c["status"] == "failed":
            print(f"failed: {c['run_id']}: {c['error']}", file=stream)
    print(_counts_line(doc), file=stream, flush=True)
