"""The search loop: one run = one directory under ``runs/`` (``--out``) that explains itself.

``runs/<run-id>/`` holds ``config.json`` (every setting + environment), ``metrics.csv``
(one row per epoch), ``genotypes.jsonl``, ``checkpoint.pt`` (after every epoch, written
atomically) and ``summary.json`` (status: running / finished / diverged / interrupted).
An interrupted run resumes from its last finished epoch with the same results as an
uninterrupted one, because every epoch's randomness is derived from (seed, epoch) alone.
The format and the lifecycle (resume, per-epoch files, status) are :mod:`.rundir`'s; this
module builds a search from its resolved config and drives its epochs.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .config import RunConfig
from .cpu_memory import retain_freed_memory
from .data import BatchStream, Dataset, TorchLoaderStream, load_dataset
from .errors import NasbenchEvalError, RunDirError
from .execution import (Execution, StepRunner, execution_resume_conflict, prepare_model,
                        resolve_device, resolve_execution)
from .methods import Method, create_method
from .oracles import Oracle, OracleContext, create_oracle, fallback_notes
from .oracles.oneshot import accuracy
from .resolve import earlier_auto_run, legacy_resume_conflict, resolve_config
from .runlog import RunLog
from .rundir import (CONFIG_FILE, FINISHED, GENOTYPES_FILE, RUNNING, SUMMARY_FILE, RunRecorder,
                     claim_run_dir, derived_seed, environment, is_done, is_finite, read_json,
                     refuse_existing, write_json)
from .sinks import EpochRecord, open_sinks
from .spaces import load_space
from .spaces.registry import get_family
from .spaces.base import Space
from .spaces.supernet import SupernetBase

EpochCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class Search:
    """Everything a run is made of, built from a :class:`RunConfig`."""

    cfg: RunConfig
    device: torch.device
    space: Space
    data: Dataset
    train: BatchStream
    val: BatchStream
    val_eval: BatchStream
    test: BatchStream
    supernet: nn.Module
    method: Method
    oracle: Oracle
    execution: Execution
    stepper: StepRunner | None = None

    @property
    def steps_per_epoch(self) -> int:
        n = min(len(self.train), len(self.val))
        return min(n, self.cfg.max_steps_per_epoch) if self.cfg.max_steps_per_epoch else n

    def oracle_context(self) -> OracleContext:
        return OracleContext(self.supernet, self.space, self.cfg, self.device, self.train, self.test)


def build_search(cfg: RunConfig) -> Search:
    """Validate names first (fail before any work), then build data, model and method."""
    cfg = resolve_config(cfg)
    method = create_method(cfg.method)
    space = method.adapt_space(load_space(cfg.space))
    oracle = create_oracle(cfg.oracle)
    type(oracle).resolve(cfg.oracle_options)  # a bad --oracle-option fails before any work
    if not oracle.available(space, cfg):
        reason = oracle.unavailable_reason(space, cfg)
        raise NasbenchEvalError(
            f"oracle '{cfg.oracle}' cannot score space '{space.name}' (family {space.family})"
            + (f": {reason}" if reason else "") + "; --oracle oneshot works everywhere")
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        retain_freed_memory()  # timings only: the step's activations stay mapped
    ex = resolve_execution(cfg.memory_format, cfg.precision, cfg.data_loader, cfg.compile, device,
                           cfg.cuda_graphs, cfg.fused_edges,
                           get_family(space.family).fused_edges_default)
    data = load_dataset(cfg.dataset, cfg.data_root, **cfg.dataset_options)
    tr_idx, va_idx = data.search_split(cfg.train_portion)
    for split, idx in (("search-train", tr_idx), ("search-val", va_idx)):
        if len(idx) < cfg.batch_size:
            raise NasbenchEvalError(
                f"the {split} split of {cfg.dataset} has {len(idx)} images, fewer than one "
                f"batch of {cfg.batch_size}; lower --batch-size")
    cls = TorchLoaderStream if ex.data_loader == "torch" else BatchStream
    stream = lambda x, y, **kw: cls(x, y, cfg.batch_size, data.mean, data.std,  # noqa: E731
                                    device, memory_format=ex.torch_memory_format, **kw)
    train = stream(data.train_x[tr_idx], data.train_y[tr_idx], augment=data.augment)
    val = stream(data.train_x[va_idx], data.train_y[va_idx], augment=data.augment)
    val_eval = stream(data.train_x[va_idx], data.train_y[va_idx], shuffle=False, drop_last=False)
    test = stream(data.test_x, data.test_y, shuffle=False, drop_last=False)

    torch.manual_seed(derived_seed(cfg.seed, -1, "init"))
    supernet = space.build_supernet(cfg.channels, cfg.layers, data.num_classes,
                                    data.channels).to(device)
    if not isinstance(supernet, SupernetBase):  # the seam every caller relies on
        raise NasbenchEvalError(
            f"space '{space.name}' (family {space.family}) built a {type(supernet).__name__}, "
            f"which does not subclass nasbench_eval.spaces.supernet.SupernetBase; a family's "
            f"supernet must (docs/spaces.md)")
    prepare_model(supernet, ex, device)
    search = Search(cfg, device, space, data, train, val, val_eval, test, supernet, method,
                    oracle, ex)
    method.setup(supernet, space, cfg, search.steps_per_epoch)
    method.set_execution(ex, device)
    method.bind_data({"train": train, "val": val, "val_eval": val_eval})
    return search


# ----------------------------------------------------------------------------- loop

def _stderr(text: str) -> None:
    print(text, file=sys.stderr)


def epoch_record(search: Search, row: dict[str, Any], genotype: dict[str, Any]) -> EpochRecord:
    """What the tracking sinks get of a finished epoch (built only when one is active)."""
    weights = {k: v.detach().float().cpu().numpy()
               for k, v in search.method.mixing_weights().items()}
    text = str(search.space.genotype_from_dict(genotype["genotype"]))
    return EpochRecord(genotype["epoch"], dict(row), genotype["genotype"], text, weights)


def _summarize(genotypes: list[dict[str, Any]]) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    """The headline numbers of ``summary.json`` (after status, epochs_done, wall_time_s)."""

    def summarize(history: list[dict[str, Any]]) -> dict[str, Any]:
        last = history[-1] if history else {}
        # epochs left unscored by --oracle-every hold None; the last epoch is always scored,
        # so "final" is the last score (of an unfinished run: the latest one)
        errors = [r["anytime_test_error"] for r in history
                  if r.get("anytime_test_error") is not None]
        return dict(final_genotype=genotypes[-1]["genotype"] if genotypes else None,
                    final_test_error=errors[-1] if errors else None,
                    best_test_error=min(errors) if errors else None,
                    final_val_acc=last.get("val_acc"),
                    final_param_free_fraction=last.get("param_free_normal"))

    return summarize


@dataclass
class OpenRun:
    """A run directory opened for (more) epochs: its search, recorder and genotypes so far.
    :func:`run` drives one; the seed packing (:mod:`.packing.runner`) drives several."""

    cfg: RunConfig
    run_dir: Path
    search: Search
    rec: RunRecorder
    genotypes: list[dict[str, Any]]


def open_run(cfg: RunConfig, resume: bool = False,
             execution_note: dict[str, Any] | None = None) -> OpenRun | Path:
    """Check, build and (re)open the run directory of ``cfg`` (resolved): the run directory
    itself when the run is over (never repeated), else an :class:`OpenRun` whose
    ``config.json`` is written (or its resumption noted). ``execution_note``: extra entries of
    config.json's ``execution`` record (e.g. the seeds a packed run ran beside)."""
    run_dir = Path(cfg.out) / cfg.run_id()
    previous = refuse_existing(run_dir / SUMMARY_FILE, resume)
    if is_done(previous):
        return run_dir  # nothing left to do: a finished run is never repeated

    if previous is not None:  # resuming: the record of how the run was started must be there
        doc = read_json(run_dir / CONFIG_FILE)
        if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
            raise RunDirError(f"{run_dir / CONFIG_FILE} is missing or unreadable, so this run "
                              f"cannot be resumed safely; move the directory aside to start "
                              f"it again")
        why = legacy_resume_conflict(doc["config"], cfg)
        if why is not None:
            raise RunDirError(
                f"{run_dir} was started by an earlier version of nasbench-eval and is not "
                f"finished; it cannot be continued by this one: {why}. Its epochs so far still "
                f"load in the analysis; to run it again, move the directory aside (or use "
                f"another --out) and run the same command")
        _refuse_other_execution(doc, cfg, run_dir)
    search = build_search(cfg)
    genotypes: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"run_id": cfg.run_id(), "method": cfg.method,
                               "space": search.space.name, "dataset": cfg.dataset,
                               "seed": cfg.seed, "epochs": cfg.epochs, "oracle": cfg.oracle}
    rec = RunRecorder.for_search(run_dir, summary, _summarize(genotypes))
    state = rec.restore(search.device) if resume else None
    if state is not None:
        search.supernet.load_state_dict(state["supernet"])
        search.method.load_state_dict(state["method"])
        genotypes += state["genotypes"]
    env = environment(search.device)
    note = execution_note or {}
    if rec.start_epoch == 0:
        write_json(run_dir / CONFIG_FILE, {
            "run_id": cfg.run_id(), "config": cfg.to_dict(), "environment": env,
            "space_spec": search.space.path,
            "weights": sum(p.numel() for p in search.supernet.parameters()),
            "steps_per_epoch": search.steps_per_epoch,
            "execution": {**search.execution.to_dict(), **note}})
    else:  # keep the original record, note the resumption
        doc = read_json(run_dir / CONFIG_FILE)
        doc.setdefault("resumed", []).append({"at_epoch": rec.start_epoch, "environment": env,
                                              **note})
        write_json(run_dir / CONFIG_FILE, doc)
    return OpenRun(cfg, run_dir, search, rec, genotypes)


def run(cfg: RunConfig | None = None, *, resume: bool = False,
        on_epoch_end: EpochCallback | None = None, **overrides: Any) -> Path:
    """Run (or resume) one search and return its run directory.

    ``run(method="darts", space="s3", dataset="digits", epochs=3)`` is the notebook form;
    the CLI's ``nasbench-eval run`` is a thin layer over it.
    """
    if cfg is None:
        cfg = RunConfig(**overrides)
    elif overrides:
        cfg = RunConfig.from_dict({**cfg.to_dict(), **overrides})
    requested, cfg = cfg, resolve_config(cfg)
    run_dir = Path(cfg.out) / cfg.run_id()
    if resume and (earlier := earlier_auto_run(requested, cfg)) is not None:
        raise RunDirError(
            f"--resume: there is no run {cfg.run_id()} in {cfg.out} (--oracle auto now "
            f"chooses '{cfg.oracle}' here), but {earlier[0]} has these settings with the "
            f"oracle '{earlier[1]}', which auto chose when it was started, and is not "
            f"finished. To continue it, add --oracle {earlier[1]}; to start a new run with "
            f"'{cfg.oracle}', leave out --resume")
    # a bad --out fails here, before data and model are built; one driver per run directory
    with claim_run_dir(run_dir):
        if is_done(refuse_existing(run_dir / SUMMARY_FILE, resume)):
            return run_dir  # checked before run.log opens: a finished run's files stay as they are
        with RunLog(run_dir, cfg.run_id(), wait_for_config=True) as log:  # run.log: console lines, warnings, traceback
            opened = open_run(cfg, resume)
            if isinstance(opened, Path):
                return opened
            return _drive(opened, on_epoch_end, log)


def _drive(opened: OpenRun, on_epoch_end: EpochCallback | None, log: RunLog) -> Path:
    """The epoch loop of :func:`run` once ``run.log`` is open: search, record, report."""
    cfg, run_dir, search = opened.cfg, opened.run_dir, opened.search
    rec, genotypes = opened.rec, opened.genotypes
    steps = search.steps_per_epoch
    log.say(f"{cfg.run_id()}: {search.space.name} on {cfg.dataset}, anytime oracle "
            f"'{cfg.oracle}', {steps} steps/epoch, device {search.device}",
            _stderr if cfg.progress else None)
    for note in fallback_notes(search.space, cfg):
        log.say(note, _stderr if cfg.progress else None)
    sinks = open_sinks(cfg.log_to, run_dir, cfg.run_id(), cfg.to_dict(), rec.history)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.epochs * steps, initial=rec.start_epoch * steps,
               disable=not (cfg.progress and sys.stderr.isatty()),
               desc=cfg.run_id(), unit="step", dynamic_ncols=True, leave=False)
    rec.finish(RUNNING)
    try:
        with rec.guard():
            for epoch in range(rec.start_epoch, cfg.epochs):
                t_epoch = time.perf_counter()
                row, stop_reason = _run_epoch(search, rec, genotypes, epoch, bar)
                if row is None:  # diverged, and recorded as such
                    return run_dir
                log.say(_epoch_line(cfg, epoch, row, time.perf_counter() - t_epoch),
                        bar.write if cfg.progress else None)
                sinks.epoch(lambda: epoch_record(search, row, genotypes[-1]))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
                if stop_reason:
                    rec.finish(FINISHED, stopped_early_at_epoch=epoch,
                               stop_reason=str(stop_reason))
                    return run_dir
        rec.finish(FINISHED)
    finally:
        bar.close()
        log.say(f"status: {rec.status}  epochs: {len(rec.history)}/{cfg.epochs}")
        sinks.close(rec.status)
    return run_dir


def _refuse_other_execution(doc: dict[str, Any], cfg: RunConfig, run_dir: Path) -> None:
    """Refuse to continue a run with execution settings that compute differently from those
    it started with (config.json's record), saying what differs and how to go on."""
    device = resolve_device(cfg.device)
    family = get_family(load_space(cfg.space).family)
    ex = resolve_execution(cfg.memory_format, cfg.precision, cfg.data_loader, cfg.compile,
                           device, cfg.cuda_graphs, cfg.fused_edges, family.fused_edges_default)
    recorded = dict(doc.get("execution") or {})
    if (not family.fused_edges_default and recorded.get("fused_edges") is True
            and (doc.get("config") or {}).get("fused_edges", "auto") == "auto"):
        # written before the family had a fused path: auto recorded True, the per-edge loop
        # ran (today's auto on this family), so nothing computes differently
        recorded["fused_edges"] = False
    why = execution_resume_conflict(recorded or None,
                                    (doc.get("environment") or {}).get("device"), ex, device)
    if why is not None:
        started = (doc.get("environment") or {}).get("device")
        moved = any(d.startswith("device ") for d in why.split("; "))
        where = f" (--device {started})" if moved else ""
        raise RunDirError(
            f"{run_dir} was started with other execution settings than this resume would use "
            f"({why}), which compute differently; continue it as it was started{where}, or "
            f"move the directory aside (or use another --out) and run the command again to "
            f"start it with these settings")


def _epoch_times(row: dict[str, Any], total_s: float) -> str:
    """The epoch's wall time as printed: all of it, then its parts (the search steps; the
    oracle's scoring with the checkpoint), so the printed times add up to the run's."""
    search_s = row["epoch_time_s"]
    return (f"{total_s:.1f}s: search {search_s:.1f}s, scoring + checkpoint "
            f"{max(total_s - search_s, 0.0):.1f}s")


def _epoch_line(cfg: RunConfig, epoch: int, row: dict[str, Any], total_s: float) -> str:
    """The per-epoch progress line: the search's numbers, the score and what it cost, and the
    epoch's whole wall time (``total_s``) with its parts."""
    err = row["anytime_test_error"]
    if err is None:
        score = "anytime_test_err -"
    else:
        cached = " cached" if row.get("oracle_cached") else ""
        score = (f"anytime_test_err {err:.3f} ({cfg.oracle} {row['oracle_time_s']:.1f}s"
                 f"{cached})")
    return (f"epoch {epoch + 1}/{cfg.epochs}  train_acc {row['train_acc']:.3f}  val_acc "
            f"{row['val_acc']:.3f}  {score}  param_free "
            f"{row.get('param_free_normal', float('nan')):.2f}  ({_epoch_times(row, total_s)})")


def scores_epoch(cfg: RunConfig, epoch: int, stopping: bool = False) -> bool:
    """Whether the oracle scores ``epoch``: every ``oracle_every``-th, the last, and the one
    a method stops the search at."""
    return stopping or (epoch + 1) % cfg.oracle_every == 0 or epoch == cfg.epochs - 1


def _run_epoch(search: Search, rec: RunRecorder, genotypes: list[dict[str, Any]], epoch: int,
               bar, row: dict[str, Any] | None = None, t0: float | None = None
               ) -> tuple[dict[str, Any] | None, Any]:
    """One epoch: search, derive, score, record. Returns the epoch's metrics row (None when
    the search diverged) and a method's early-stop reason. ``row`` and ``t0``: the epoch was
    searched elsewhere (seed packing: :func:`epoch_row` of its sums, its time from ``t0``)."""
    t0 = time.perf_counter() if t0 is None else t0
    row = _search_epoch(search, epoch, bar) if row is None else row
    if rec.diverged(row, epoch, elapsed=time.perf_counter() - t0):
        return None, None
    stop_reason = row.pop("stop_reason", None)  # a method may end the search early
    genotype = search.method.derive()
    score: dict[str, Any] = {"test_error": None}
    t_oracle = time.perf_counter()
    if scores_epoch(search.cfg, epoch, stopping=bool(stop_reason)):
        score = search.oracle.score(genotype, search.oracle_context())
    oracle_time = time.perf_counter() - t_oracle
    rec.wall += time.perf_counter() - t0
    row.update(anytime_test_error=score["test_error"], **genotype.metrics(),
               wall_time_s=round(rec.wall, 3))
    if score["test_error"] is not None:
        row["oracle_time_s"] = round(oracle_time, 3)
    row.update({f"oracle_{k}": v for k, v in score.items() if k != "test_error"})
    genotypes.append({"epoch": epoch, "genotype": genotype.to_dict()})
    rec.record_epoch(row, {"supernet": search.supernet.state_dict(),
                           "method": search.method.state_dict(), "genotypes": genotypes},
                     files={GENOTYPES_FILE: "".join(json.dumps(g) + "\n" for g in genotypes)})
    err = row["anytime_test_error"]
    bar.set_postfix(epoch=epoch, val_acc=f"{row['val_acc']:.3f}",
                    test_err="-" if err is None else f"{err:.3f}")
    return row, stop_reason


def epoch_generators(seed: int, epoch: int) -> tuple[torch.Generator, torch.Generator]:
    """Seed torch's global RNG for epoch ``epoch`` of seed ``seed`` and return the
    generators of its training and validation batch order (a function of both alone)."""
    torch.manual_seed(derived_seed(seed, epoch, "torch"))
    return (torch.Generator().manual_seed(derived_seed(seed, epoch, "train")),
            torch.Generator().manual_seed(derived_seed(seed, epoch, "val")))


def _search_epoch(search: Search, epoch: int, bar) -> dict[str, Any]:
    cfg, method = search.cfg, search.method
    g_train, g_val = epoch_generators(cfg.seed, epoch)
    t0 = time.perf_counter()
    search.supernet.train()
    if search.stepper is None:
        search.stepper = StepRunner(method, capture=search.execution.cuda_graphs)
        method.make_capturable(search.stepper.capture)
    search.stepper.begin_epoch()
    sums: dict[str, torch.Tensor] = {}
    batches = zip(search.train.epoch(g_train), search.val.epoch(g_val))
    for i, (tb, vb) in enumerate(batches):
        if i >= search.steps_per_epoch:
            break
        for k, v in search.stepper(tb, vb).items():
            sums[k] = sums[k] + v if k in sums else v
        bar.update(1)
    return epoch_row(search, epoch, sums, t0)


def epoch_row(search: Search, epoch: int, sums: dict[str, torch.Tensor], t0: float
              ) -> dict[str, Any]:
    """The metrics row of an epoch from the per-example sums of its steps: the method's
    epoch end (schedules, lambda_max), the accuracy on search-val and the time since ``t0``."""
    method = search.method
    host = {k: float(v) for k, v in sums.items()}  # the one sync of the epoch
    n = host.pop("train_count")
    row: dict[str, Any] = {"epoch": epoch}
    row.update(train_loss=host.pop("train_loss") / n, train_acc=host.pop("train_correct") / n)
    row.update({k: v / n for k, v in host.items()})  # further per-example sums of the method
    row.update(method.end_epoch(epoch))
    if is_finite(row["train_loss"]):
        row["val_loss"], row["val_acc"] = accuracy(search.supernet, method.mixing_weights(),
                                                   search.val_eval)
    row["epoch_time_s"] = round(time.perf_counter() - t0, 3)
    return row


# ----------------------------------------------------------------------------- reference

REFERENCE_SEED = 0
"""Seed of the random cells :func:`reference_scores` draws: the same cells for every run of a
space, so a results directory's train-oracle cache trains them once."""


def reference_scores(run_dir: str | Path, n_random: int = 3) -> dict[str, Any]:
    """What a finished run's final anytime error can be judged against: the test error of
    ``n_random`` random cells of the space scored by the run's own oracle (with the run's
    final supernet weights, for the one-shot oracle) and the error of guessing (1 - 1/classes).

    Not written anywhere: ``nasbench-eval run`` prints it after the search."""
    from .rundir import CHECKPOINT_FILE, load_checkpoint

    run_dir = Path(run_dir)
    doc = read_json(run_dir / CONFIG_FILE)
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        raise RunDirError(f"{run_dir / CONFIG_FILE} is missing or unreadable")
    search = build_search(RunConfig.from_dict(doc["config"]))
    ckpt = run_dir / CHECKPOINT_FILE
    if ckpt.exists():
        search.supernet.load_state_dict(load_checkpoint(ckpt, search.device)["supernet"])
    g = torch.Generator().manual_seed(REFERENCE_SEED)
    errors, genotypes = [], []
    for _ in range(n_random):
        genotype = search.space.sample_genotype(g)
        errors.append(search.oracle.score(genotype, search.oracle_context())["test_error"])
        genotypes.append(genotype.to_dict())
    return {"oracle": search.cfg.oracle, "random_test_errors": errors,
            "random_genotypes": genotypes, "chance_error": 1.0 - 1.0 / search.data.num_classes}
