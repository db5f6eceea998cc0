"""Running a sweep: plan it (validate, say what each cell would do), then drive an executor
over the cells that are not done, keeping the index and the progress display up to date."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

from .executors import EXECUTORS, make_executor
from .executors.base import Executor
from ..rundir import DIVERGED, DONE, FAILED, RUNNING, read_summary
from .index import SweepIndex, SweepLock, sweep_index_path
from .packs import PackPlan, pack_label, plan_packs
from .progress import ProgressTable
from .report import _counts_line, print_summary
from .spec import (GRID_KEYS, Cell, SweepError, SweepSpec, executor_problems,
                   load_sweep_file, now)
from .validate import sweep_id, validate


def plan_sweep(spec: SweepSpec) -> dict[str, Any]:
    """Validate the grid and say, for each cell, what a sweep would do now (no side effects)."""
    cells = validate(spec)
    sid = sweep_id(spec, cells)
    plan = []
    for cell in cells:
        summary = read_summary(cell.path, unreadable_ok=True)
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


def run_sweep(spec: SweepSpec | str | os.PathLike | None = None, *, executor: str | Any = None,
              gpus: int | None = None, ray_address: str | None = None,
              cpus_per_run: int | None = None, workers: int | None = None,
              pack: int | None = None,
              executor_options: Mapping[str, Mapping[str, Any]] | None = None,
              dry_run: bool = False, quiet: bool = False,
              stream: TextIO | None = None, summary: bool = True, **grid: Any) -> dict[str, Any]:
    """Run a sweep and return its index (the content of ``<out>/sweeps/<sweep-id>.json``).

    ``spec`` is a :class:`SweepSpec`, the path of a sweep file, or None to build the grid
    from keyword arguments (which also override a sweep file's values)::

        run_sweep(methods="darts,sdarts-rs", spaces=["s2", "s3"], datasets="digits",
                  seeds="0-9", epochs=10, out="runs")

    ``executor`` is ``"local"`` (default), ``"ray"``, ``"slurm"`` or an executor object;
    ``executor_options`` holds the options of executors that have their own, by executor
    name (``{"slurm": {"partition": "gpu", "time": "4:00:00"}}``), over a sweep file's
    ``[slurm]`` table. ``pack=K`` runs the seeds of each setting K at a time as one packed
    search (:mod:`.packs`; local and ray executors). With ``dry_run`` nothing is created or
    run; the plan is printed and returned.
    """
    stream = stream or sys.stdout
    file_exec: dict[str, Any] = {}
    if isinstance(spec, (str, os.PathLike)):
        spec, file_exec = load_sweep_file(spec)
    if spec is None:
        spec = SweepSpec.create(**grid)
    elif grid:
        spec = _override(spec, grid)
    for key, given in (("executor", executor), ("gpus", gpus), ("cpus_per_run", cpus_per_run),
                       ("ray_address", ray_address), ("workers", workers), ("pack", pack)):
        if given is not None:  # the command line overrides the file's (refused) value
            spec.invalid.pop(key, None)
    gpus = gpus if gpus is not None else file_exec.get("gpus", 0)
    cpus_per_run = cpus_per_run if cpus_per_run is not None else file_exec.get("cpus_per_run")
    ray_address = ray_address if ray_address is not None else file_exec.get("ray_address")
    workers = workers if workers is not None else file_exec.get("workers")
    pack_where = "--pack" if pack is not None else spec.where("pack")
    pack = pack if pack is not None else file_exec.get("pack")
    bad = executor_problems({"gpus": gpus, "cpus_per_run": cpus_per_run,
                             "ray_address": ray_address, "workers": workers, "pack": pack},
                            lambda k: f"--{k.replace('_', '-')}")
    ex = executor
    if not bad and (executor is None or isinstance(executor, str)):
        kind = executor or file_exec.get("executor", "local")
        try:
            ex = make_executor(kind, gpus, ray_address, cpus_per_run, workers,
                               **_executor_options(kind, file_exec, executor_options or {}))
        except SweepError as exc:
            bad["executor"] = str(exc)
    if "pack" not in bad and pack and pack > 1 and isinstance(ex, Executor) and ex.packs_refused:
        able = [n for n, cls in EXECUTORS.items() if cls.packs_refused is None]
        bad["pack"] = (f"{pack_where}: the {ex.name} executor cannot run packed seeds "
                       f"({ex.packs_refused}); use --pack 1, or an executor that packs: "
                       f"{', '.join(able)}")
    if bad or spec.invalid:  # every problem at once: the grid check reports them all
        spec.invalid = {**spec.invalid, **{f"executor {k}": v for k, v in bad.items()}}
        validate(spec)

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
        to_do = [c for c, p in zip(cells, plan["cells"]) if not p["action"].startswith("skip")]
        packing = plan_packs(to_do, pack)
        for note in packing.notes:
            say(note)
        for unit in packing.units:
            if len(unit) > 1:
                for c in unit:
                    plan["cells"][c.index]["action"] += f" ({pack_label(unit)})"
        width = max(len(c["run_id"]) for c in plan["cells"])
        n = len(str(len(cells)))
        for c in plan["cells"]:
            say(f"  {c['index'] + 1:>{n}}  {c['run_id']:<{width}}  {c['action']}")
        acts = [c["action"].split()[0] for c in plan["cells"]]
        say(f"dry run: would run {acts.count('run')}, resume {acts.count('resume')}, "
            f"skip {acts.count('skip')}; nothing was started")
        return plan

    index_path = sweep_index_path(spec.out, sid)
    with SweepLock(index_path.with_name(f".{sid}.lock")):
        index = SweepIndex.open(spec, sid, cells)
        todo = [c for c in cells if index.cell(c)["status"] not in DONE]
        skipped = len(cells) - len(todo)
        packing: PackPlan = plan_packs(todo, pack)
        invocation = {"started": now(), "ended": None, "executor": ex.name,
                      "to_run": len(todo), "skipped": skipped}
        if pack:
            invocation.update(pack=pack, packs=sum(len(u) > 1 for u in packing.units))
        index.doc["invocations"].append(invocation)
        index.save()
        table = ProgressTable(cells, stream, quiet=quiet)
        for c in cells:
            e = index.cell(c)
            table.set(c, status=e["status"], epochs_done=e["epochs_done"],
                      test_error=e["final_test_error"])
        if skipped:
            say(f"{skipped} of {len(cells)} runs already done (finished or diverged): skipped")
        for note in packing.notes:
            say(note)
        started_at: dict[int, float] = {}
        attempted: set[int] = set()
        ex.adopt({c.index: list(index.cell(c).get("job_ids") or []) for c in todo})

        def emit(cell: Cell, kind: str, info: dict[str, Any]) -> None:
            entry = index.cell(cell)
            if "job_id" in info:  # a cluster job (re)started for this cell: kept across reruns
                jobs = entry.setdefault("job_ids", [])
                if not jobs or jobs[-1] != info["job_id"]:
                    jobs.append(info["job_id"])
            if kind in ("queued", "running"):
                if kind == "running" or cell.index not in started_at:
                    started_at[cell.index] = time.time()
                if cell.index not in attempted:  # one attempt per cell and invocation
                    attempted.add(cell.index)
                    entry["attempts"] = entry.get("attempts", 0) + 1
                    entry["started"] = now()
                resumed = entry["epochs_done"]
                entry.update(status=kind, error=None, traceback=None)
                table.set(cell, status=kind)
                text = (kind + (f" (resuming after epoch {resumed}/{cell.config.epochs})"
                                if resumed else "")
                        + (f" (CUDA_VISIBLE_DEVICES={info['device']})" if "device" in info
                           else "")
                        + (f" ({info['pack']})" if "pack" in info else "")
                        + (f" (job {info['job_id']}{', ' + info['note'] if 'note' in info else ''})"
                           if "job_id" in info else ""))
                table.event(cell, kind, text)
            elif kind == "epoch":
                entry.update(status=RUNNING, epochs_done=info["epochs_done"],
                             final_test_error=info.get("test_error"))
                table.set(cell, status=RUNNING, epochs_done=info["epochs_done"],
                          test_error=info.get("test_error"))
                err = info.get("test_error")
                table.event(cell, kind, f"epoch {info['epochs_done']}/{cell.config.epochs}"
                            + (f"  test_err {err:.4f}" if err is not None else ""))
                return  # no index write per epoch: summary.json of the run has it
            elif kind == "end":
                took = time.time() - started_at.get(cell.index, time.time())
                summary_doc = read_summary(cell.path, unreadable_ok=True) or {}
                entry.update(status=info["status"], error=info.get("error"),
                             traceback=info.get("traceback"), ended=now(),
                             epochs_done=summary_doc.get("epochs_done", entry["epochs_done"]) or 0,
                             final_test_error=summary_doc.get("final_test_error"))
                table.set(cell, status=info["status"], epochs_done=entry["epochs_done"],
                          test_error=entry["final_test_error"], time_s=took)
                done = sum(1 for e in index.doc["cells"] if e["status"] in DONE)
                err = entry["final_test_error"]
                detail = (f"  {entry['epochs_done']}/{cell.config.epochs} epochs"
                          + (f"  test_err {err:.4f}" if err is not None else "")
                          + f"  ({took:.1f} s; {done}/{len(cells)} done)")
                if info["status"] in (FAILED, DIVERGED) and info.get("error"):
                    detail += f"\n      {info['status']}: {info['error']}"
                table.event(cell, kind, info["status"] + detail)
            index.save()

        try:
            if packing.packed:
                ex.execute_packs(packing.units, emit)
            else:  # no pack of two or more: the executor's ordinary path
                ex.execute(todo, emit)
        except KeyboardInterrupt:
            invocation["ended"] = now()
            invocation["interrupted"] = True
            index.save()
            table.line(f"sweep {sid} interrupted: rerun the same command to resume it "
                       f"(finished runs are skipped)")
            raise
        invocation["ended"] = now()
        index.save()
        if table.live:
            table.line("")
    if summary and not quiet:
        print_summary(index.doc, stream)
    elif summary:
        print(_counts_line(index.doc), file=stream, flush=True)
    return index.doc


def _executor_options(kind: str, file_exec: dict[str, Any],
                      given: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The options of executor ``kind``: the sweep file's ``[kind]`` table, overridden by the
    given ones (flags or the API), with where each came from; options given for another
    executor are refused (``--slurm-partition`` with ``--executor local``)."""
    for name, opts in given.items():
        if name != kind and opts:
            flag = f"--{name}-{next(iter(opts)).replace('_', '-')}"
            raise SweepError(f"{flag} is only for --executor {name} (this sweep uses the "
                             f"{kind} executor)")
    from_file = dict(file_exec.get("executor_options", {}).get(kind, {}))
    flags = {str(k).replace("-", "_"): v for k, v in given.get(kind, {}).items()}
    file_name = file_exec.get("executor_options_file")

    def where(key: str) -> str:
        if key in flags or key not in from_file:
            return f"--{kind}-{key.replace('_', '-')}"
        return f"{file_name}: field '{kind}.{key}'"

    return {"options": {**from_file, **flags}, "where": where}


def _override(spec: SweepSpec, grid: dict[str, Any]) -> SweepSpec:
    """A copy of ``spec`` whose values the given loose ones (API keywords, CLI flags) replace."""
    grid = dict(grid)
    options = {**spec.options, **(grid.pop("options", None) or {})}
    origins = {**spec.origins, **{k: k for k in grid}, **(grid.pop("origins", None) or {})}
    base: dict[str, Any] = {"methods": spec.methods or None, "spaces": spec.spaces or None,
                            "datasets": spec.datasets, "seeds": spec.seeds, "out": spec.out,
                            "name": spec.name, **spec.settings, **grid}
    out = SweepSpec.create(**base, options=options, origins=origins)
    # what could not be read stays a problem unless a new value replaces it
    out.invalid = {**{k: v for k, v in spec.invalid.items() if k not in grid}, **out.invalid}
    return out

