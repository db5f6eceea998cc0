"""Seed packing in a sweep (``sweep --pack K``, issue 20).

The cells of a grid that differ only in their seed (same method, space, dataset, settings,
options and execution settings) run K at a time as one packed search
(:func:`nasbench_eval.packing.runner.run_packed`). A pack is the executor's unit of work: one
in-process call, one worker process, one Ray task. It writes the same run directories, run
ids and files as K separate cells (packing is an execution setting: ``packed_seeds`` in each
run's ``config.json``), so the index, the progress events, resumption and the analysis see
ordinary runs.

Only the cells still to do are packed, so a rerun of an interrupted packed sweep never
repeats a finished seed: the unfinished ones are packed again (in groups that may differ
from the first invocation's; a checkpoint is an ordinary run's, and seeds resumed at
different epochs are brought level by the packed runner).

Where a group cannot run packed (a method or space packing refuses, ``--compile``,
``--cuda-graphs``, tracking sinks), its cells run one at a time, as without ``--pack``, and
the sweep prints why: packing changes how a search executes, never what it computes, so the
fallback gives the same results (see docs/sweeps.md).
"""
from __future__ import annotations

import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..rundir import DONE, FAILED, read_summary
from .spec import Cell

UnitEpoch = Callable[[int, int, dict[str, Any]], None]
"""``(position in the unit, epoch, row)``: a run of a unit of work recorded an epoch."""


@dataclass
class PackPlan:
    """The units of work of a sweep invocation: lists of cells, a pack or a single cell,
    ordered by their first cell's place in the grid; ``notes`` say which cells run
    unpacked despite ``--pack`` and why."""

    units: list[list[Cell]]
    notes: list[str] = field(default_factory=list)

    @property
    def packed(self) -> bool:
        """Whether any unit holds more than one cell (else the executor's ordinary path)."""
        return any(len(u) > 1 for u in self.units)


def group_key(cfg: RunConfig) -> str:
    """Everything of a cell's configuration but its seed (execution settings included:
    the seeds of one pack run as one computation, with one set of settings)."""
    return json.dumps({**cfg.to_dict(), "seed": None}, sort_keys=True, default=str)


def packing_refusal(cfg: RunConfig) -> str | None:
    """Why the seeds of ``cfg`` cannot run packed (None: they can). Cheap: the packed
    runner's own check on a narrow copy of the supernet."""
    from ..packing.net import PackingError
    from ..packing.runner import check_packing

    try:
        check_packing(cfg)
    except PackingError as exc:
        return str(exc)
    return None


def plan_packs(cells: Sequence[Cell], pack: int | None) -> PackPlan:
    """Group ``cells`` (the cells still to do) into units of at most ``pack`` seeds of one
    setting each; groups that cannot pack become single-cell units, with a note."""
    if not pack or pack <= 1:
        return PackPlan([[c] for c in cells])
    groups: dict[str, list[Cell]] = {}
    for c in cells:
        groups.setdefault(group_key(c.config), []).append(c)
    units: list[list[Cell]] = []
    refused: dict[str, list[list[Cell]]] = {}
    for members in groups.values():
        why = packing_refusal(members[0].config) if len(members) > 1 else None
        if why is None:
            units += [members[i:i + pack] for i in range(0, len(members), pack)]
        else:
            refused.setdefault(why, []).append(members)
            units += [[c] for c in members]
    units.sort(key=lambda u: u[0].index)
    notes = []
    for why, groups_of in refused.items():
        n = sum(len(m) for m in groups_of)
        which = ", ".join(f"{m[0].config.method} on {m[0].config.space}/{m[0].config.dataset}"
                          for m in groups_of)
        notes.append(f"--pack {pack}: {n} run{'s' if n != 1 else ''} ({which}) run one at a "
                     f"time, unpacked: {why}")
    return PackPlan(units, notes)


def pack_label(unit: Sequence[Cell]) -> str:
    """``packed: seeds 0,1,2`` (the progress lines and the dry run)."""
    return "packed: seeds " + ",".join(str(c.config.seed) for c in unit)


def interrupted_outcome(cell: Cell) -> dict[str, Any]:
    """The outcome of a cell whose unit of work was interrupted (Ctrl-C): its own where its
    run was over before (a seed of a pack that finished or diverged first), else
    ``interrupted``."""
    from .executors.base import interrupted

    summary = read_summary(cell.path, unreadable_ok=True) or {}
    if summary.get("status") in DONE:
        return {"status": summary["status"], "error": summary.get("error"), "traceback": None,
                "epochs_done": summary.get("epochs_done"),
                "final_test_error": summary.get("final_test_error")}
    return interrupted()


def run_unit(configs: Sequence[dict[str, Any]], threads: int | None = None,
             on_epoch_end: UnitEpoch | None = None) -> list[dict[str, Any]]:
    """Run (or resume, or skip when done) one unit of work; never raises for a failing run.

    One config: :func:`~nasbench_eval.sweep.executors.base.run_cell`, unchanged. Several
    (the seeds of one setting): one packed search. Returns one outcome per config, in order
    (the dict of ``run_cell``). The body of every executor that runs packs: in-process, in a
    local worker process, in a Ray task."""
    from .executors.base import run_cell

    if len(configs) == 1:
        cb = None if on_epoch_end is None else (
            lambda epoch, row: on_epoch_end(0, epoch, row))
        return [run_cell(dict(configs[0]), threads, cb)]
    return run_pack(configs, threads, on_epoch_end)


def run_pack(configs: Sequence[dict[str, Any]], threads: int | None = None,
             on_epoch_end: UnitEpoch | None = None) -> list[dict[str, Any]]:
    """The seeds ``configs`` (the same settings but the seed) as one packed search, resumed
    where their run directories stopped; one outcome per config. When the packed search
    raises, the seeds it had not finished are ``failed`` with its error (the packed runner
    recorded that in their summaries) and the finished ones keep their status."""
    import torch

    from ..packing.runner import run_packed
    from ..resolve import resolve_config

    cfgs = [resolve_config(RunConfig.from_dict(dict(c))) for c in configs]
    position = {c.seed: i for i, c in enumerate(cfgs)}
    cb = None if on_epoch_end is None else (
        lambda seed, epoch, row: on_epoch_end(position[seed], epoch, row))
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    error = trace = None
    try:
        run_packed(cfgs, resume=True, on_epoch_end=cb)
    except Exception as exc:  # noqa: BLE001 - recorded in the index, the sweep goes on
        error, trace = f"{type(exc).__name__}: {exc}", traceback.format_exc()
    finally:
        if threads:
            torch.set_num_threads(previous_threads)
    outcomes = []
    for c in cfgs:
        summary = read_summary(Path(c.out) / c.run_id(), unreadable_ok=True) or {}
        status = summary.get("status", FAILED)
        if error is not None and status not in DONE:
            outcomes.append({"status": FAILED, "error": error, "traceback": trace,
                             "epochs_done": summary.get("epochs_done"),
                             "final_test_error": summary.get("final_test_error")})
        else:
            outcomes.append({"status": status, "error": summary.get("error"),
                             "traceback": None, "epochs_done": summary.get("epochs_done"),
                             "final_test_error": summary.get("final_test_error")})
    return outcomes
