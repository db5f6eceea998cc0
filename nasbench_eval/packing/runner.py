"""K seeds of one search as one packed computation, written as K ordinary runs.

``run_seeds(cfg, seeds, pack)`` opens one run directory per seed exactly as
:func:`nasbench_eval.runner.run` would (same run id: packing is an execution setting, noted
as ``packed_seeds`` in config.json's ``execution`` record, never in the id), then runs the
seeds of each group of ``pack`` epoch by epoch: the steps of all of them at once
(:mod:`.step`), then each seed's own epoch end (schedules, lambda_max, accuracy, derivation,
oracle, checkpoint, files) through the runner's code, on that seed's own RNG state.

Between epochs the per-seed supernets and methods hold the whole state, so every checkpoint
is an ordinary run's: a packed group resumes packed or separately, and a separate run can be
resumed in a pack. A seed that diverges or stops early leaves the group; the others go on.
Seeds resumed at different epochs are brought level first (the laggards run packed together).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig
from ..errors import NasbenchEvalError
from ..methods import method_class
from ..rundir import DONE, FAILED, FINISHED, INTERRUPTED, RUNNING, claim_run_dir
from ..runlog import RunLog
from ..resolve import resolve_config
from ..spaces import load_space
from .net import PackedSupernet, PackingError
from .step import PACKED_METHODS, REFUSED, packed_step_for

_log = logging.getLogger(__name__)


def _say(text: str, echo: bool) -> None:
    """A line of the packed group: on the console unless quiet, and in every seed's
    ``run.log`` (each seed's :class:`~nasbench_eval.runlog.RunLog` listens on the package
    logger), as :meth:`RunLog.say` does for a single run."""
    if echo:
        print(text, file=sys.stderr)
    _log.info(text)


def parse_seeds(text: str) -> list[int]:
    """``"0-9"``, ``"0,3,7"`` or ``"0-3,8"`` -> the seeds, in order, without repeats."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                seeds += range(lo_i, hi_i + 1)
            else:
                seeds.append(int(part))
    except ValueError:
        raise NasbenchEvalError(
            f"--seeds {text!r}: expected seeds like 0-9, 0,3,7 or 0-3,8") from None
    return list(dict.fromkeys(seeds))


def check_packing(cfg: RunConfig) -> None:
    """Refuse settings that cannot pack before any work (method, capture, compile, tracking
    sinks)."""
    if cfg.method not in PACKED_METHODS:
        method_class(cfg.method)  # an unknown name: the registry's error
        why = REFUSED.get(cfg.method, "its step has no packed form")
        raise PackingError(f"method '{cfg.method}' cannot run packed: {why}; packable methods: "
                           f"{', '.join(PACKED_METHODS)}. Run its seeds separately (--seed, "
                           f"or --pack 1)")
    if cfg.cuda_graphs or cfg.compile:
        raise PackingError("packed seeds run eagerly: drop --cuda-graphs / --compile, or run "
                           "the seeds separately (--pack 1)")
    if cfg.log_to:
        raise PackingError(f"packed runs do not mirror into tracking sinks (--log-to "
                           f"{','.join(cfg.log_to)}): drop --log-to, or run the seeds "
                           f"separately (--pack 1)")
    # the space's ops and supernet, checked on a narrow copy (cheap, on the CPU)
    space = method_class(cfg.method)().adapt_space(load_space(cfg.space))
    try:
        PackedSupernet([space.build_supernet(2, cfg.layers, 2, 1)])
    except PackingError as exc:
        raise PackingError(f"space '{space.name}' cannot run packed: {exc}") from None


def run_seeds(cfg: RunConfig, seeds: Sequence[int], pack: int | None = None,
              resume: bool = False, workers: int | None = None) -> list[Path]:
    """Run (or resume) the searches of ``cfg`` for every seed, ``pack`` seeds at a time as
    one packed computation (None: all at once, or with ``workers`` an equal share per worker;
    1: one ordinary run after another). ``workers``: run the groups in that many worker
    processes side by side, one CPU thread each (the sweep's local workers). Returns the run
    directories, in the order of ``seeds``."""
    from ..runner import run

    if pack is not None and pack < 1:
        raise NasbenchEvalError(f"--pack must be >= 1, got {pack}")
    if workers is not None and workers < 1:
        raise NasbenchEvalError(f"--workers must be >= 1, got {workers}")
    if not seeds:
        raise NasbenchEvalError("no seeds given")
    cfgs = [resolve_config(replace(cfg, seed=s)) for s in seeds]
    if pack is None:
        k = -(-len(cfgs) // workers) if workers and workers > 1 else len(cfgs)
    else:
        k = pack
    if k > 1 and len(cfgs) > 1:
        check_packing(cfgs[0])
    if workers and workers > 1:
        return _run_on_workers(cfgs, k, workers, resume)
    dirs: list[Path] = []
    for i in range(0, len(cfgs), k):
        group = cfgs[i:i + k]
        if len(group) == 1:
            dirs.append(run(group[0], resume=resume))
        else:
            dirs += run_packed(group, resume=resume)
    return dirs


def _run_on_workers(cfgs: list[RunConfig], k: int, workers: int, resume: bool) -> list[Path]:
    """The groups of ``k`` seeds as units of work of ``workers`` local worker processes (one
    CPU thread each), as ``sweep --pack k --workers N`` runs them. Why: on a CPU the packed
    step is bound by memory traffic, and two single-thread packs side by side did more than one
    pack twice as wide on two threads (benchmarks/seed_packing.py, docs/speed.md)."""
    from .. import execution
    from ..rundir import SUMMARY_FILE, refuse_existing
    from ..sweep.executors.local import LocalExecutor
    from ..sweep.spec import Cell

    if execution.resolve_device(cfgs[0].device).type != "cpu":
        raise NasbenchEvalError("--workers runs the packs in CPU worker processes (one thread "
                                "each); on GPUs run a sweep with --gpus N --pack K, one worker "
                                "per GPU")
    dirs = [Path(c.out) / c.run_id() for c in cfgs]
    if not resume:  # the workers always resume: refuse what a plain run would refuse, first
        for d in dirs:
            refuse_existing(d / SUMMARY_FILE, False)
    echo = cfgs[0].progress
    units = [[Cell(i + j, c) for j, c in enumerate(cfgs[i:i + k])]
             for i in range(0, len(cfgs), k)]
    _say(f"{len(cfgs)} seeds in {len(units)} group(s) of up to {k} on {workers} worker "
         f"processes (one CPU thread each)", echo)
    ends: dict[int, dict[str, Any]] = {}

    def emit(cell: Cell, kind: str, info: dict[str, Any]) -> None:
        if kind == "end":
            ends[cell.index] = info
            err = info.get("final_test_error")
            _say(f"seed {cell.config.seed}: {info.get('status')}"
                 + (f", final anytime test error {err:.4f}" if err is not None else "")
                 + (f" ({info['error']})" if info.get("error") else ""), echo)

    LocalExecutor(workers=workers).execute_packs(units, emit)
    failed = [(c.seed, ends.get(i, {})) for i, c in enumerate(cfgs)
              if ends.get(i, {}).get("status") not in DONE]  # diverged is an outcome
    if failed:
        raise NasbenchEvalError("not every seed finished: " + "; ".join(
            f"seed {seed}: {o.get('status', 'no result')}"
            + (f" ({o['error']})" if o.get("error") else "") for seed, o in failed)
            + f". Their run directories are under {cfgs[0].out}; rerun with --resume to "
            f"continue the unfinished ones")
    return dirs


SeedEpochCallback = Callable[[int, int, dict[str, Any]], None]
"""``(seed, epoch, row)``, called after a seed of a packed group recorded an epoch (the
sweep's progress events)."""


def run_packed(cfgs: Sequence[RunConfig], resume: bool = False,
               on_epoch_end: SeedEpochCallback | None = None) -> list[Path]:
    """Run the searches ``cfgs`` (resolved; the same settings but the seed) as one packed
    computation; returns their run directories in order. ``on_epoch_end(seed, epoch, row)``
    follows each seed's recorded epochs."""
    seeds = [c.seed for c in cfgs]
    with contextlib.ExitStack() as stack:
        # every run directory locked (one driver each) and writing its own run.log; a
        # message of the group goes to every seed's log
        for c in cfgs:
            stack.enter_context(claim_run_dir(Path(c.out) / c.run_id()))
        for c in cfgs:
            stack.enter_context(RunLog(Path(c.out) / c.run_id(), c.run_id(), wait_for_config=True))
        return _run_packed(cfgs, resume, {"packed_seeds": seeds}, on_epoch_end)


def _run_packed(cfgs: Sequence[RunConfig], resume: bool, note: dict[str, Any],
                on_epoch_end: SeedEpochCallback | None = None) -> list[Path]:
    """:func:`run_packed` with the run directories claimed."""
    from ..runner import OpenRun, open_run

    opened: list[OpenRun | Path] = [open_run(c, resume, note) for c in cfgs]
    runs = [o for o in opened if isinstance(o, OpenRun)]
    for r in runs:
        r.rec.finish(RUNNING)
    if runs:
        _say(f"packed seeds {', '.join(str(r.cfg.seed) for r in runs)}: {cfgs[0].method} on "
             f"{runs[0].search.space.name}/{cfgs[0].dataset}, "
             f"{runs[0].search.steps_per_epoch} steps/epoch, device {runs[0].search.device}",
             cfgs[0].progress)
    active = {id(r): r for r in runs}
    for r in runs:
        if _next_epoch(r) >= r.cfg.epochs:  # every epoch recorded, the finish was not
            r.rec.finish(FINISHED)
            del active[id(r)]
    try:
        while active:
            epoch = min(_next_epoch(r) for r in active.values())
            group = [r for r in active.values() if _next_epoch(r) == epoch]
            for r, done in zip(group, _packed_epoch(group, epoch, on_epoch_end)):
                if done:
                    del active[id(r)]
    except KeyboardInterrupt:
        for r in active.values():
            if r.rec.status not in DONE:  # a seed that finished in this epoch stays finished
                r.rec.finish(INTERRUPTED)
        raise
    except Exception as exc:
        for r in active.values():
            if r.rec.status not in DONE:
                r.rec.finish(FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        for r in runs:
            _say(f"{r.cfg.run_id()}: status: {r.rec.status}  epochs: "
                 f"{len(r.rec.history)}/{r.cfg.epochs}", False)
    return [o if isinstance(o, Path) else o.run_dir for o in opened]


def _next_epoch(r: Any) -> int:
    """The epoch run ``r`` searches next: its history holds every epoch recorded so far,
    restored ones included."""
    return len(r.rec.history)


def _num(v: Any) -> str:
    """``0.123``, or ``-`` for a value not computed this epoch (an oracle every k epochs)."""
    return "-" if v is None else f"{v:.3f}"


class _Silent:
    """The progress bar :func:`nasbench_eval.runner._run_epoch` updates, muted."""

    def set_postfix(self, **_: Any) -> None:
        pass

    def update(self, _: int = 1) -> None:
        pass


def _packed_epoch(group: list[Any], epoch: int,
                  on_epoch_end: SeedEpochCallback | None = None) -> list[bool]:
    """Epoch ``epoch`` of every run of ``group`` (all at that epoch): packed steps, then each
    run's own epoch end. Returns, per run, whether it is over (finished, diverged, stopped)."""
    from ..runner import _run_epoch, epoch_generators, epoch_row

    t0 = time.perf_counter()
    gens: list[torch.Generator] = []  # each seed's global RNG stream, seeded as its run's
    iters = []
    for r in group:
        g_train, g_val = epoch_generators(r.cfg.seed, epoch)
        dev = r.search.device
        g = torch.Generator(device=dev)
        g.set_state(torch.cuda.get_rng_state(dev) if dev.type == "cuda" else torch.get_rng_state())
        gens.append(g)
        r.search.supernet.train()
        iters.append(zip(r.search.train.epoch(g_train), r.search.val.epoch(g_val)))
    net = PackedSupernet([r.search.supernet for r in group])
    step = packed_step_for([r.search.method for r in group], net)
    sums: dict[str, torch.Tensor] = {}
    for _ in range(group[0].search.steps_per_epoch):
        pairs = [next(it) for it in iters]
        out = step.step([p[0] for p in pairs], [p[1] for p in pairs], gens)
        for key, v in out.items():
            sums[key] = sums[key] + v if key in sums else v
    step.unpack_into()
    searched = time.perf_counter() - t0
    done = []
    for i, r in enumerate(group):
        if r.search.device.type == "cuda":  # this seed's RNG as its own steps left it
            torch.cuda.set_rng_state(gens[i].get_state(), r.search.device)
        else:
            torch.set_rng_state(gens[i].get_state())
        start = time.perf_counter() - searched
        row = epoch_row(r.search, epoch, {key: v[i] for key, v in sums.items()}, start)
        row, stop = _run_epoch(r.search, r.rec, r.genotypes, epoch, _Silent(), row=row, t0=start)
        if row is None:
            done.append(True)  # diverged, recorded
            continue
        _say(f"seed {r.cfg.seed} epoch {epoch + 1}/{r.cfg.epochs}  "
             + "  ".join(f"{k} {_num(row.get(k))}" for k in ("train_acc", "val_acc"))
             + f"  anytime_test_err {_num(row.get('anytime_test_error'))}"
             f"  ({row['epoch_time_s']:.1f}s, packed)", r.cfg.progress)
        if on_epoch_end is not None:
            on_epoch_end(r.cfg.seed, epoch, row)
        if stop:
            r.rec.finish(FINISHED, stopped_early_at_epoch=epoch, stop_reason=str(stop))
            done.append(True)
        elif epoch + 1 >= r.cfg.epochs:
            r.rec.finish(FINISHED)
            done.append(True)
        else:
            done.append(False)
    return done
