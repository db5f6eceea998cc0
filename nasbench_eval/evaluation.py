"""The evaluation stage: train a derived architecture from scratch and record its test error.

A search returns a genotype; the papers' headline numbers are the test error of that
genotype's *discrete* network trained from scratch at a larger size (DARTS: 20 cells, 36
channels, 600 epochs on CIFAR-10). The genotype's space family builds that network
(:meth:`~nasbench_eval.spaces.base.SpaceFamily.build_network`; DARTS cells:
:class:`~nasbench_eval.spaces.darts.network.DiscreteNetwork`) and supplies the training
protocol's defaults for the dataset (:meth:`~nasbench_eval.spaces.base.SpaceFamily.evaluation_defaults`);
this module trains it (:class:`EvalConfig`) and writes ``evaluation.json`` (+
``evaluation_metrics.csv``, ``evaluation_checkpoint.pt``) beside the run it evaluated, or in a
directory of its own for a genotype given as JSON. See ``docs/evaluation.md``.

Like a search run, an evaluation checkpoints after every epoch and resumes with identical
numbers: every epoch's randomness (batch order, crops, flips, cutout, drop-path masks) is
derived from (seed, epoch) with :func:`~nasbench_eval.rundir.derived_seed`. The lifecycle
(resume, per-epoch files, divergence, Ctrl-C) is the search runner's:
:class:`~nasbench_eval.rundir.RunRecorder` over the evaluation's own file names.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .config import DEFAULT_OUT, ConfigError, from_fields
from .data import BatchStream, Dataset, load_dataset
from .errors import NasbenchEvalError, RunDirError
from .cpu_memory import retain_freed_memory
from .execution import resolve_device
from .rundir import (CONFIG_FILE, DIVERGED, FINISHED, RUNNING, RunRecorder, derived_seed,
                     environment, fingerprint, is_done, is_finite, read_json, read_summary,
                     refuse_existing)
from .schedules import cosine
from .spaces.base import GENERIC_EVALUATION, EvalNetwork, SpaceFamily
from .spaces.registry import FAMILIES, family_of as _family, get_family

EpochCallback = Callable[[int, dict[str, Any]], None]

EVALUATION_FILE = "evaluation.json"
METRICS_FILE = "evaluation_metrics.csv"
CHECKPOINT_FILE = "evaluation_checkpoint.pt"


# ============================================================================ counting

def count_parameters(model: nn.Module) -> dict[str, int]:
    """``params``: every parameter except the auxiliary head's (the papers' convention: DARTS
    counts ``named_parameters`` without "auxiliary"); ``params_with_auxiliary``: all."""
    total = sum(p.numel() for p in model.parameters())
    heads = model.auxiliary_modules() if isinstance(model, EvalNetwork) else []
    aux = sum(p.numel() for head in heads for p in head.parameters())
    return {"params": total - aux, "params_with_auxiliary": total}


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass of one input (C x H x W), in eval mode.

    Counted with forward hooks on every ``Conv2d`` (output elements x input channels per
    group x kernel area) and ``Linear`` (output elements x input features); BN, pools,
    additions and activations are not counted, as is usual. Eval mode: no auxiliary head,
    no drop-path, i.e. the inference cost.
    """
    total = [0]

    def conv_hook(m: nn.Conv2d, _inp: Any, out: Tensor) -> None:
        kh, kw = m.kernel_size
        total[0] += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: Any, out: Tensor) -> None:
        total[0] += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total[0]


# ============================================================================== config

EVAL_EXECUTION_FIELDS = frozenset({"device", "out", "data_root", "progress"})
"""EvalConfig fields that say where an evaluation runs, not what it computes: left out of its id."""


@dataclass
class EvalConfig:
    """Every knob of one evaluation; ``None`` = the default of the dataset / space family.

    :meth:`resolved` fills them in from the genotype's family
    (:meth:`~nasbench_eval.spaces.base.SpaceFamily.evaluation_defaults`): e.g. DARTS cells on
    CIFAR-10 get the DARTS protocol (20 cells, 36 channels, 600 epochs, batch 96, SGD 0.025
    cosine to 0, momentum 0.9, wd 3e-4, clip 5, cutout 16, drop-path 0.2 ramped linearly,
    auxiliary weight 0.4), NAS-Bench-101 cells NAS-Bench-101's; see ``docs/evaluation.md``.
    """

    dataset: str = "cifar10"
    seed: int = 0
    epochs: int | None = None
    layers: int | None = None
    channels: int | None = None
    batch_size: int | None = None
    cutout: int | None = None
    drop_path: float | None = None
    """Final drop-path probability; epoch e uses drop_path * e / epochs."""
    auxiliary: float | None = None
    """Weight of the auxiliary head's loss; 0 = no auxiliary head."""
    optimizer: str | None = None
    lr: float | None = None
    lr_min: float = 0.0
    momentum: float | None = None
    weight_decay: float | None = None
    grad_clip: float = 5.0
    max_steps_per_epoch: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    # execution
    device: str = "auto"
    out: str = DEFAULT_OUT
    data_root: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, problem: str) -> ConfigError:  # named as `evaluate`'s flag
            return ConfigError(name, problem, "--" + name.replace("_", "-"))

        for name in ("epochs", "layers", "channels", "batch_size", "max_steps_per_epoch"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise bad(name, f"expected a positive integer, got {v!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise bad("seed", f"expected an integer >= 0, got {self.seed!r}")
        if self.cutout is not None and self.cutout < 0:
            raise bad("cutout", f"expected an integer >= 0 (0 = off), got {self.cutout}")
        if self.drop_path is not None and not 0.0 <= self.drop_path < 1.0:
            raise bad("drop_path", f"expected a number in [0, 1), got {self.drop_path}")
        if self.auxiliary is not None and not (math.isfinite(self.auxiliary)
                                               and self.auxiliary >= 0):
            raise bad("auxiliary", f"expected a finite number >= 0, got {self.auxiliary}")
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr >= 0):
            raise bad("lr", f"expected a finite number >= 0, got {self.lr}")
        if self.optimizer is not None and self.optimizer not in ("sgd", "rmsprop"):
            raise ConfigError("optimizer", f"expected sgd or rmsprop, got {self.optimizer!r}",
                              "optimizer")

    def resolved(self, family: str | SpaceFamily | None = None,
                 space: str | None = None) -> EvalConfig:
        """Fill every ``None`` from the defaults the space family (a name or the family;
        None: generic defaults) gives for the dataset and the space (its name)."""
        from .data import DATASETS

        if self.dataset not in DATASETS:
            from .errors import unknown

            raise unknown("dataset", self.dataset, DATASETS)
        if family is None:
            defaults = dict(GENERIC_EVALUATION)
        else:
            fam = get_family(family) if isinstance(family, str) else family
            fam.check_evaluation(self)
            defaults = fam.evaluation_defaults(self.dataset, space)
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalConfig:
        return from_fields(cls, d, "evaluation settings")

    def fingerprint(self, genotype: Any) -> str:
        """The evaluation's id hash: every setting that changes what it computes, and the
        genotype (the encoding of :func:`~nasbench_eval.rundir.fingerprint`, so ids of
        evaluations written earlier stay what they were)."""
        d = {k: v for k, v in self.to_dict().items() if k not in EVAL_EXECUTION_FIELDS}
        return fingerprint({**d, "genotype": genotype_to_dict(genotype)})


# ============================================================================ genotypes

def family_of(genotype: Any) -> str:
    """The name of the space family a genotype belongs to."""
    return _family(genotype).name


def genotype_from_json(text_or_path: str | dict, space: str | None = None) -> Any:
    """A genotype from JSON text, a path to a JSON file, or an already parsed dict.

    Accepted: anything a registered space family recognises (e.g. a DARTS genotype dict
    ``normal``, ``reduce`` [, ``*_concat``]; a NAS-Bench-101 cell ``matrix``, ``ops``, also
    inside an ``nb101-cell`` genotype's ``nb101`` key), or a document holding one under
    ``genotype`` (a line of ``genotypes.jsonl``) or ``final_genotype`` (``summary.json``).
    With ``space`` (a space name or spec path) the space's own ``genotype_from_dict`` parses
    it.
    """
    if isinstance(text_or_path, dict):
        d: Any = text_or_path
    else:
        text = str(text_or_path)
        p = Path(text)
        try:
            is_file = p.is_file()
        except OSError:  # e.g. a JSON text too long to be a path
            is_file = False
        source = p.read_text() if is_file else text
        try:
            d = json.loads(source)
        except ValueError as exc:
            where = f"file {p}" if is_file else "--genotype text (not an existing file either)"
            raise NasbenchEvalError(f"{where} is not valid JSON: {exc}") from None
    if isinstance(d, dict):
        for key in ("genotype", "final_genotype"):
            if isinstance(d.get(key), dict):
                d = d[key]
                break
    if not isinstance(d, dict):
        raise NasbenchEvalError("a genotype must be a JSON object")
    if space is not None:
        from .spaces import load_space

        return load_space(space).genotype_from_dict(d)
    for family in FAMILIES.all().values():
        if family.recognises(d):
            return family.genotype_from_json(d)
    raise NasbenchEvalError(
        f"unrecognised genotype JSON: no registered space family ({', '.join(FAMILIES.names())})"
        f" recognises it, and it is no document with 'genotype' / 'final_genotype'; pass "
        f"--space to parse it as a genotype of that space (docs/spaces.md lists each family's "
        f"genotype format)")


def genotype_to_dict(genotype: Any) -> dict[str, Any]:
    return genotype.to_dict()


def build_network(genotype: Any, cfg: EvalConfig, num_classes: int, in_channels: int
                  ) -> EvalNetwork:
    """The network of ``genotype`` at the (resolved) settings of ``cfg``, built by its family."""
    return _family(genotype).build_network(genotype, cfg, num_classes, in_channels)


# ============================================================================= the loop

@dataclass
class _Source:
    """Where the genotype came from and where the evaluation's files go."""

    genotype: Any
    space: str | None
    out_dir: Path | None  # the evaluated run's directory; None: a new one under cfg.out
    run: dict[str, Any] | None


def _not_finished_advice(run_dir: Path, summary: dict[str, Any]) -> str:
    """Why the search in ``run_dir`` cannot be evaluated yet, and what to do instead. A
    diverged search is over (``--resume`` returns it as it is): what is left is the genotype
    of its last good epoch, or a new search with smaller learning rates."""
    status = summary.get("status")
    head = f"{run_dir}: the search has status '{status}', not 'finished'"
    if status != DIVERGED:
        return (f"{head}; finish it first by rerunning the command that started it with "
                f"--resume (nasbench-eval run ... --resume), or evaluate a genotype with "
                f"--genotype")
    why = f" ({summary['error']})" if summary.get("error") else ""
    done = summary.get("epochs_done") or 0
    rerun = ("search again with a smaller --w-lr or --alpha-lr (a new run id; --resume "
             "cannot continue a diverged run)")
    if not summary.get("final_genotype"):
        return f"{head}{why}; it diverged before any epoch ended, so there is no genotype: {rerun}"
    space = f" --space {summary['space']}" if summary.get("space") else ""
    return (f"{head}{why}; --resume cannot continue a diverged run. Evaluate the genotype of "
            f"its last good epoch (epoch {done}): nasbench-eval evaluate --genotype "
            f"{run_dir / 'summary.json'}{space}, or {rerun}")


def _source_from_run(run_dir: str | Path) -> _Source:
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is None:
        raise RunDirError(f"{run_dir} is not a run directory (no summary.json)")
    if summary.get("status") != FINISHED:
        raise RunDirError(_not_finished_advice(run_dir, summary))
    if not summary.get("final_genotype"):
        raise RunDirError(f"{run_dir}: summary.json has no final genotype")
    from .spaces import load_space

    # the space as the run named it (a bundled name or a spec path), else its recorded spec
    candidates: list[str] = []
    doc = read_json(run_dir / CONFIG_FILE)
    if doc is not None:
        candidates += [c for c in (doc.get("config", {}).get("space"), doc.get("space_spec")) if c]
    if summary.get("space"):
        candidates.append(summary["space"])
    space_obj, error = None, None
    for name in candidates:
        try:
            space_obj = load_space(name)
            break
        except NasbenchEvalError as exc:
            error = error or exc
    if space_obj is None:
        raise RunDirError(f"{run_dir}: cannot load the space of the run ({error})")
    genotype = space_obj.genotype_from_dict(summary["final_genotype"])
    run = {k: summary.get(k) for k in ("run_id", "method", "space", "dataset", "seed",
                                       "final_test_error")}
    run["run_dir"] = str(run_dir)
    run["search_final_test_error"] = run.pop("final_test_error")
    return _Source(genotype, space_obj.name, run_dir, run)


class _Trainer:
    def __init__(self, cfg: EvalConfig, genotype: Any, data: Dataset, device: torch.device):
        self.cfg, self.genotype, self.data, self.device = cfg, genotype, data, device
        if len(data.train_y) < cfg.batch_size:
            raise NasbenchEvalError(f"{cfg.dataset} has {len(data.train_y)} training images, "
                                    f"fewer than one batch of {cfg.batch_size}; lower --batch-size")
        augment = replace(data.augment, cutout=cfg.cutout, cutout_prob=1.0)
        self.train = BatchStream(data.train_x, data.train_y, cfg.batch_size, data.mean, data.std,
                                 device, augment=augment)
        self.test = BatchStream(data.test_x, data.test_y, cfg.batch_size, data.mean, data.std,
                                device, shuffle=False, drop_last=False)
        torch.manual_seed(derived_seed(cfg.seed, -1, "init"))
        self.model = build_network(genotype, cfg, data.num_classes, data.channels).to(device)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        if cfg.optimizer == "rmsprop":  # NAS-Bench-101 (TensorFlow's epsilon 1.0)
            self.opt: torch.optim.Optimizer = torch.optim.RMSprop(
                self.params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                eps=1.0)
        else:
            self.opt = torch.optim.SGD(self.params, lr=cfg.lr, momentum=cfg.momentum,
                                       weight_decay=cfg.weight_decay)

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.train)
        return min(n, self.cfg.max_steps_per_epoch) if self.cfg.max_steps_per_epoch else n

    def schedule(self, epoch: int) -> tuple[float, float]:
        """(lr, drop-path probability) of an epoch: cosine to lr_min, linear ramp from 0."""
        c = self.cfg
        return cosine(epoch, c.epochs, c.lr, c.lr_min), c.drop_path * epoch / c.epochs

    def epoch(self, epoch: int) -> dict[str, Any]:
        cfg, model = self.cfg, self.model
        t0 = time.perf_counter()
        torch.manual_seed(derived_seed(cfg.seed, epoch, "torch"))
        g = torch.Generator().manual_seed(derived_seed(cfg.seed, epoch, "train"))
        lr, p = self.schedule(epoch)
        for group in self.opt.param_groups:
            group["lr"] = lr
        model.set_drop_path(p)
        model.train()
        zero = lambda: torch.zeros((), device=self.device)  # noqa: E731
        loss_sum, aux_sum, correct, count = zero(), zero(), zero(), zero()
        for i, (x, y) in enumerate(self.train.epoch(g)):
            if i >= self.steps_per_epoch:
                break
            logits, aux = model(x)
            loss = F.cross_entropy(logits, y)
            total = loss
            if aux is not None:
                aux_loss = F.cross_entropy(aux, y)
                total = loss + cfg.auxiliary * aux_loss
                aux_sum += aux_loss.detach() * len(y)
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            self.opt.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.detach().argmax(1) == y).sum()
            count += len(y)
        n = float(count)  # the one host sync of the training pass
        row: dict[str, Any] = {"epoch": epoch, "lr": lr, "drop_path": p,
                               "train_loss": float(loss_sum) / n,
                               "train_error": 1.0 - float(correct) / n}
        if cfg.auxiliary and model.auxiliary_modules():
            row["train_aux_loss"] = float(aux_sum) / n
        if is_finite(row["train_loss"]) and is_finite(row.get("train_aux_loss", 0.0)):
            row["test_loss"], test_acc = self.evaluate_test()
            row["test_error"] = 1.0 - test_acc
        row["epoch_time_s"] = round(time.perf_counter() - t0, 3)
        return row

    @torch.no_grad()
    def evaluate_test(self) -> tuple[float, float]:
        self.model.eval()
        loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        n = 0
        for x, y in self.test.epoch(None, augment=False):
            logits, _ = self.model(x)
            loss += F.cross_entropy(logits, y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
            n += len(y)
        return float(loss) / n, float(correct) / n


def evaluate(run_dir: str | Path | None = None, *, genotype: Any = None, space: str | None = None,
             cfg: EvalConfig | None = None, resume: bool = False,
             on_epoch_end: EpochCallback | None = None, **settings: Any) -> Path:
    """Train the genotype of a finished run (or a given genotype) from scratch.

    Returns the directory holding ``evaluation.json``: ``run_dir`` itself, or
    ``<out>/eval-<dataset>-seed<seed>-<hash>`` for a ``genotype`` (a Genotype, a dict, JSON text
    or a JSON file path). ``settings`` are :class:`EvalConfig` fields; unset ones take the
    dataset's defaults. An existing evaluation with the same settings continues with
    ``resume=True`` (a finished or diverged one is returned as is); one with other settings is
    refused rather than overwritten.
    """
    if (run_dir is None) == (genotype is None):
        raise NasbenchEvalError("evaluate needs exactly one of RUN_DIR or --genotype")
    if run_dir is not None:
        source = _source_from_run(run_dir)
        if space is not None:
            source.space = Path(str(space)).stem
    else:
        if isinstance(genotype, (str, dict, os.PathLike)):
            genotype = genotype_from_json(genotype, space)
        source = _Source(genotype, space and Path(str(space)).stem, None, None)
    if cfg is None:
        settings = {k: v for k, v in settings.items() if v is not None}
        settings.setdefault("dataset", (source.run or {}).get("dataset") or "cifar10")
        cfg = EvalConfig(**settings)
    elif settings:
        cfg = EvalConfig.from_dict({**cfg.to_dict(), **settings})
    family_obj = _family(source.genotype)
    family = family_obj.name
    cfg = cfg.resolved(family_obj, source.space)
    family_obj.validate_genotype(source.genotype)
    fp = cfg.fingerprint(source.genotype)
    eval_id = f"eval-{cfg.dataset}-seed{cfg.seed}-{fp}"
    out_dir = source.out_dir if source.out_dir is not None else Path(cfg.out) / eval_id
    doc_path = out_dir / EVALUATION_FILE

    previous = read_json(doc_path)
    if previous is not None and previous.get("fingerprint") != fp:
        raise RunDirError(
            f"{out_dir} already holds an evaluation with other settings (id "
            f"{previous.get('eval_id')}); delete {EVALUATION_FILE}, {METRICS_FILE} and "
            f"{CHECKPOINT_FILE} there to replace it, or evaluate with its settings")
    refuse_existing(doc_path, resume, what="this evaluation", hint="")
    if is_done(previous):
        return out_dir

    device = resolve_device(cfg.device)
    if device.type == "cpu":
        retain_freed_memory()  # timings only, as for a search (cpu_memory)
    data = load_dataset(cfg.dataset, cfg.data_root, **cfg.dataset_options)
    trainer = _Trainer(cfg, source.genotype, data, device)
    counts = count_parameters(trainer.model)
    input_shape = (data.channels, *data.image_size)
    macs = count_macs(trainer.model, input_shape)
    out_dir.mkdir(parents=True, exist_ok=True)

    doc: dict[str, Any] = {
        "eval_id": eval_id, "fingerprint": fp, "status": RUNNING,
        "family": family, "space": source.space, "source_run": source.run,
        "genotype": genotype_to_dict(source.genotype), "genotype_str": str(source.genotype),
        "dataset": cfg.dataset, "seed": cfg.seed, "epochs": cfg.epochs,
        "settings": cfg.to_dict(), "input_shape": list(input_shape),
        "num_classes": data.num_classes, **counts, "params_M": round(counts["params"] / 1e6, 4),
        "macs": macs, "steps_per_epoch": trainer.steps_per_epoch,
    }
    rec = RunRecorder(doc_path, out_dir / METRICS_FILE, out_dir / CHECKPOINT_FILE, doc,
                      _summarize, fingerprint=fp)
    state = rec.restore(device) if resume else None
    if state is not None:
        trainer.model.load_state_dict(state["model"])
        trainer.opt.load_state_dict(state["optimizer"])
    env = environment(device)
    doc["environment"] = env
    if previous is not None and rec.start_epoch > 0:  # keep the original record, note the resumption
        doc["environment"] = previous.get("environment", env)
        doc["resumed"] = previous.get("resumed", []) + [{"at_epoch": rec.start_epoch,
                                                         "environment": env}]

    if cfg.progress:
        print(f"{eval_id}: {family} genotype on {cfg.dataset}, {cfg.layers} cells x "
              f"{cfg.channels} channels, {counts['params'] / 1e6:.3f}M params, "
              f"{macs / 1e6:.1f}M MACs, {trainer.steps_per_epoch} steps/epoch, device {device} "
              f"-> {out_dir}", file=sys.stderr)
    rec.finish(RUNNING)
    # an exception leaves the status "running", as evaluations always have (the search
    # records "failed")
    with rec.guard(record_failures=False):
        for epoch in range(rec.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            row = trainer.epoch(epoch)
            rec.wall += time.perf_counter() - t0
            if rec.diverged(row, epoch):
                return out_dir
            row["wall_time_s"] = round(rec.wall, 3)
            rec.record_epoch(row, {"model": trainer.model.state_dict(),
                                   "optimizer": trainer.opt.state_dict()})
            if cfg.progress:
                print(f"epoch {epoch + 1}/{cfg.epochs}  lr {row['lr']:.5f}  train_err "
                      f"{row['train_error']:.4f}  test_err {row['test_error']:.4f}  "
                      f"({row['epoch_time_s']:.1f}s)", file=sys.stderr)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
    rec.finish(FINISHED)
    return out_dir


def _summarize(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers of ``evaluation.json`` (after status, epochs_done, wall_time_s)."""
    errors = [r["test_error"] for r in history if "test_error" in r]
    last = history[-1] if history else {}
    return dict(final_test_error=last.get("test_error"),
                final_train_error=last.get("train_error"),
                best_test_error=min(errors) if errors else None,
                curve=history)


def read_evaluation(path: str | Path) -> dict[str, Any] | None:
    """``evaluation.json`` of a run or evaluation directory (or the file itself), if any."""
    p = Path(path)
    if p.is_dir():
        p = p / EVALUATION_FILE
    return read_json(p)
