"""The search loop: one run = one directory under ``results/`` that explains itself.

``results/<run-id>/`` holds ``config.json`` (every setting + environment), ``metrics.csv``
(one row per epoch), ``genotypes.jsonl``, ``checkpoint.pt`` (after every epoch, written
atomically) and ``summary.json`` (status: running / finished / diverged / interrupted).
An interrupted run resumes from its last finished epoch with the same results as an
uninterrupted one, because every epoch's randomness is derived from (seed, epoch) alone.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import RunConfig
from .data import BatchStream, Dataset, TorchLoaderStream, load_dataset
from .fastpath import Execution, StepRunner, prepare_model, resolve_execution
from .errors import NasbenchEvalError, RunDirError
from .methods import Method, create_method
from .oracles import Oracle, OracleContext, create_oracle
from .oracles.oneshot import accuracy
from .spaces import SearchSpace, load_space

EpochCallback = Callable[[int, dict[str, Any]], None]

_STREAM_IDS = {"init": 0, "train": 1, "val": 2, "torch": 3}


def derived_seed(seed: int, epoch: int, stream: str) -> int:
    """Independent, reproducible seed for one stream of randomness in one epoch."""
    ss = np.random.SeedSequence([seed, epoch + 1, _STREAM_IDS[stream]])
    return int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63 - 1))


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NasbenchEvalError(f"unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NasbenchEvalError(f"device '{name}' requested but CUDA is not available here")
    return device


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=here, capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (commit + ("-dirty" if dirty else "")) if commit else None


def environment(device: torch.device) -> dict[str, Any]:
    from . import __version__

    return {
        "nasbench_eval": __version__,
        "git_commit": _git_commit(),
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


@dataclass
class Search:
    """Everything a run is made of, built from a :class:`RunConfig`."""

    cfg: RunConfig
    device: torch.device
    space: SearchSpace
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
    cfg = cfg.resolved()
    method = create_method(cfg.method)
    space = method.adapt_space(load_space(cfg.space))
    oracle = create_oracle(cfg.oracle)
    available = getattr(type(oracle), "available", None)
    if available is not None and not available(space, cfg):
        reason = getattr(type(oracle), "unavailable_reason", None)
        raise NasbenchEvalError(
            f"oracle '{cfg.oracle}' cannot score space '{space.name}' (family {space.family})"
            + (f": {reason(space, cfg)}" if reason else "") + "; --oracle oneshot works everywhere")
    device = resolve_device(cfg.device)
    ex = resolve_execution(cfg.memory_format, cfg.precision, cfg.data_loader, cfg.compile, device,
                           cfg.cuda_graphs, cfg.fused_edges)
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
    prepare_model(supernet, ex, device)
    search = Search(cfg, device, space, data, train, val, val_eval, test, supernet, method,
                    oracle, ex)
    method.setup(supernet, space, cfg, search.steps_per_epoch)
    if hasattr(method, "set_execution"):
        method.set_execution(ex, device)
    method.bind_data({"train": train, "val": val, "val_eval": val_eval})
    return search


# ----------------------------------------------------------------------------- files

def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    tmp = run_dir / "metrics.csv.tmp"
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, run_dir / "metrics.csv")


def _write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    atomic_write(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    p = Path(run_dir) / "summary.json"
    return json.loads(p.read_text()) if p.exists() else None


# ----------------------------------------------------------------------------- loop

def _finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))


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
    cfg = cfg.resolved()
    run_dir = Path(cfg.out) / cfg.run_id()
    ckpt_path = run_dir / "checkpoint.pt"
    previous = read_summary(run_dir)
    if previous and not resume:
        raise RunDirError(
            f"{run_dir} already holds a run (status: {previous.get('status')}); pass --resume "
            f"(resume=True) to continue it, or delete the directory to start over")
    if previous and previous.get("status") in ("finished", "diverged"):
        return run_dir  # nothing left to do: a finished run is never repeated

    search = build_search(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    genotypes: list[dict[str, Any]] = []
    start_epoch, wall = 0, 0.0
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=search.device, weights_only=False)
        search.supernet.load_state_dict(state["supernet"])
        search.method.load_state_dict(state["method"])
        history, genotypes = state["history"], state["genotypes"]
        start_epoch, wall = state["epoch"], state["wall_time_s"]
    env = environment(search.device)
    config_doc = {"run_id": cfg.run_id(), "config": cfg.to_dict(), "environment": env,
                  "space_spec": search.space.path,
                  "weights": sum(p.numel() for p in search.supernet.parameters()),
                  "steps_per_epoch": search.steps_per_epoch,
                  "execution": search.execution.to_dict()}
    if start_epoch == 0:
        atomic_write(run_dir / "config.json", json.dumps(config_doc, indent=2) + "\n")
    else:  # keep the original record, note the resumption
        doc = json.loads((run_dir / "config.json").read_text())
        doc.setdefault("resumed", []).append({"at_epoch": start_epoch, "environment": env})
        atomic_write(run_dir / "config.json", json.dumps(doc, indent=2) + "\n")

    summary: dict[str, Any] = {"run_id": cfg.run_id(), "method": cfg.method,
                               "space": search.space.name, "dataset": cfg.dataset,
                               "seed": cfg.seed, "epochs": cfg.epochs, "oracle": cfg.oracle}

    def finish(status: str, **extra: Any) -> None:
        last = history[-1] if history else {}
        errors = [r["anytime_test_error"] for r in history]
        summary.update(
            status=status, epochs_done=len(history), wall_time_s=round(wall, 3),
            final_genotype=genotypes[-1]["genotype"] if genotypes else None,
            final_test_error=last.get("anytime_test_error"),
            best_test_error=min(errors) if errors else None,
            final_val_acc=last.get("val_acc"),
            final_param_free_fraction=last.get("param_free_normal"), **extra)
        _write_summary(run_dir, summary)

    steps = search.steps_per_epoch
    if cfg.progress:
        print(f"{cfg.run_id()}: {search.space.name} on {cfg.dataset}, anytime oracle "
              f"'{cfg.oracle}', {steps} steps/epoch, device {search.device}", file=sys.stderr)
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.epochs * steps, initial=start_epoch * steps,
               disable=not (cfg.progress and sys.stderr.isatty()),
               desc=cfg.run_id(), unit="step", dynamic_ncols=True, leave=False)
    finish("running")
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            row = _search_epoch(search, epoch, bar)
            bad = {k: v for k, v in row.items() if k.endswith("_loss") and not _finite(v)}
            if bad:
                wall += time.perf_counter() - t0
                finish("diverged", diverged_at_epoch=epoch,
                       error=f"non-finite loss in epoch {epoch}: "
                             + ", ".join(f"{k}={v}" for k, v in bad.items()))
                return run_dir
            stop_reason = row.pop("stop_reason", None)  # a method may end the search early
            genotype = search.method.derive()
            score = search.oracle.score(genotype, search.oracle_context())
            wall += time.perf_counter() - t0
            row.update(anytime_test_error=score["test_error"], **genotype.metrics(),
                       wall_time_s=round(wall, 3))
            row.update({f"oracle_{k}": v for k, v in score.items() if k != "test_error"})
            history.append(row)
            genotypes.append({"epoch": epoch, "genotype": genotype.to_dict()})
            torch.save({"epoch": epoch + 1, "supernet": search.supernet.state_dict(),
                        "method": search.method.state_dict(), "history": history,
                        "genotypes": genotypes, "wall_time_s": wall},
                       run_dir / "checkpoint.pt.tmp")
            os.replace(run_dir / "checkpoint.pt.tmp", ckpt_path)
            _write_metrics(run_dir, history)
            atomic_write(run_dir / "genotypes.jsonl",
                          "".join(json.dumps(g) + "\n" for g in genotypes))
            finish("running")
            bar.set_postfix(epoch=epoch, val_acc=f"{row['val_acc']:.3f}",
                            test_err=f"{row['anytime_test_error']:.3f}")
            if cfg.progress:
                bar.write(f"epoch {epoch + 1}/{cfg.epochs}  train_acc {row['train_acc']:.3f}  "
                          f"val_acc {row['val_acc']:.3f}  anytime_test_err "
                          f"{row['anytime_test_error']:.3f}  param_free "
                          f"{row.get('param_free_normal', float('nan')):.2f}"
                          f"  ({row['epoch_time_s']:.1f}s)")
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
            if stop_reason:
                finish("finished", stopped_early_at_epoch=epoch, stop_reason=str(stop_reason))
                return run_dir
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    except Exception as exc:  # recorded so a sweep or a reader sees it; --resume retries
        finish("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()
    finish("finished")
    return run_dir


def _search_epoch(search: Search, epoch: int, bar) -> dict[str, Any]:
    cfg, method = search.cfg, search.method
    torch.manual_seed(derived_seed(cfg.seed, epoch, "torch"))
    g_train = torch.Generator().manual_seed(derived_seed(cfg.seed, epoch, "train"))
    g_val = torch.Generator().manual_seed(derived_seed(cfg.seed, epoch, "val"))
    t0 = time.perf_counter()
    search.supernet.train()
    if search.stepper is None:
        search.stepper = StepRunner(method, capture=search.execution.cuda_graphs)
        if hasattr(method, "make_capturable"):
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
    host = {k: float(v) for k, v in sums.items()}  # the one sync of the epoch
    n = host.pop("train_count")
    row: dict[str, Any] = {"epoch": epoch}
    row.update(train_loss=host.pop("train_loss") / n, train_acc=host.pop("train_correct") / n)
    row.update({k: v / n for k, v in host.items()})  # further per-example sums of the method
    row.update(method.end_epoch(epoch))
    if _finite(row["train_loss"]):
        row["val_loss"], row["val_acc"] = accuracy(search.supernet, method.mixing_weights(),
                                                   search.val_eval)
    row["epoch_time_s"] = round(time.perf_counter() - t0, 3)
    return row
