"""Every knob of a search run, in one serialisable dataclass.

The defaults are the DARTS / RobustDARTS / SDARTS search setting (shared/reference), so a run
that only names method, space and dataset reproduces the papers' protocol.

Plain data: this module imports no method, oracle or space. Settings left open (``None``,
``oracle="auto"``) are filled once, by the orchestration layer
(:func:`nasbench_eval.resolve.resolve_config`), before the run id is taken.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from .errors import NasbenchEvalError
from .rundir import fingerprint

_D = TypeVar("_D")

# Defaults a method may override (``config_defaults`` on its class), e.g. MSR's batch 128.
GLOBAL_DEFAULTS: dict[str, Any] = {"batch_size": 64, "train_portion": 0.5}

# --- issue 16 (fidelity): the w schedule's settings a method may default differently (maxw:
# sharpDARTS's cosine power annealing, p = 2, 5 warm-up epochs, down to 1e-4), and fields
# added after run ids existed. A field in _NEUTRAL_FIELDS is left out of the run id while it
# has that value, so every run id written before the field existed stays what it was.
GLOBAL_DEFAULTS.update({"lr_schedule": "cosine", "w_lr_min": 0.001, "lr_warmup": 0})
_NEUTRAL_FIELDS: dict[str, Any] = {"lr_warmup": 0, "hessian_weight_decay": True,
                                   "oracle_every": 1}  # issue 22

DEFAULT_OUT = "runs"
"""Where ``run``, ``sweep`` and ``evaluate --genotype`` make their directories by default:
not ``results/``, which holds the committed studies (a newcomer's first run must never mix
into them, nor ``leaderboard results/`` pick it up). An explicit ``--out results/...`` works
as before."""

# Fields that say where or how a run executes, not what it computes; excluded from the run id
# (and from the analysis's "setting" of a run), except as _IDENTITY_EXECUTION says.
EXECUTION_FIELDS = frozenset({"out", "device", "progress", "data_root", "memory_format",
                              "precision", "data_loader", "compile", "cuda_graphs",
                              "fused_edges", "log_to", "mlflow_uri"})

# --- issue 17: execution settings that change what a run computes beyond floating-point
# rounding, with the values that compute what the default computes. Such a setting enters the
# run id only when its value is outside that set, so every run id made with the defaults stays
# what it was, and runs that compute different things never share a directory:
# * data_loader "torch": other batches (the DataLoader draws its order and per-image
#   augmentation from other random streams than the on-device pipeline);
# * precision other than "auto": a different arithmetic (bf16 autocast) or, on a GPU, not the
#   default one;
# * fused_edges "off": the same arithmetic up to rounding (tests/test_fused_cell.py), except
#   that S4's noise ops then draw their values in another order;
# * compile: compiled kernels draw random numbers (noise, drop-path) with their own generator.
# Out: memory_format (rounding only; S4's noise draws do not depend on the layout,
# tests/test_execution.py), cuda_graphs (a captured step replays the eager step's kernels; its
# documented fallback is to resume without it) and device (where, not what). A resume that
# would compute differently from how the run started is refused (runner, via
# execution.execution_resume_conflict), so one run is never computed two ways.
_IDENTITY_EXECUTION: dict[str, frozenset[Any]] = {
    "data_loader": frozenset({"device"}), "precision": frozenset({"auto"}),
    "fused_edges": frozenset({"auto", "on"}), "compile": frozenset({False})}


def _in_identity(key: str, value: Any) -> bool:
    if key in EXECUTION_FIELDS:
        return key in _IDENTITY_EXECUTION and value not in _IDENTITY_EXECUTION[key]
    return not (key in _NEUTRAL_FIELDS and value == _NEUTRAL_FIELDS[key])


def identity_fields(config: Mapping[str, Any], drop: frozenset[str] = frozenset()
                    ) -> dict[str, Any]:
    """The settings of a config dict that identify what a run computes: without the execution
    fields (except those that change the computation, when not at a default-equivalent value:
    ``--data-loader torch``, ...), without fields at their neutral value (added after run ids
    existed), and without ``drop`` (e.g. the seed, for the analysis's "same setting"). The run
    id hashes this, and the analysis groups runs by it, so a config.json written before a
    field existed and one written after with the neutral value are the same setting."""
    return {k: v for k, v in config.items() if k not in drop and _in_identity(k, v)}


def parse_log_to(value: Any) -> list[str]:
    """``"tensorboard,mlflow"`` or a list of names -> the sink names, in order, without
    repeats (whether they exist is checked by ``resolve.resolve_config``)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise ValueError(f"log_to must be sink names such as tensorboard,mlflow, got {value!r}")
    return list(dict.fromkeys(v.strip() for v in items if v.strip()))


def written_before_issue16(config: Mapping[str, Any]) -> bool:
    """A config.json ``config`` written before the w-schedule warm-up and the Hessian
    convention existed (commit 3e5e372 and the seams redesign): its run may have computed
    ``cosine-power``, ``--hessian-every``, darts-es ``power`` and msr ``stable-rank`` the old
    way, under the same run id as today."""
    return "lr_warmup" not in config


def from_fields(cls: type[_D], d: Mapping[str, Any], what: str) -> _D:
    """``cls(**d)`` for a settings dataclass, refusing keys that are not its fields by name
    (``what``: how the error calls them, e.g. "config fields") instead of a TypeError.

    The one ``from_dict`` of :class:`RunConfig` and the evaluation stage's ``EvalConfig``:
    both read documents written by earlier versions (config.json, evaluation.json)."""
    unknown_keys = set(d) - {f.name for f in fields(cls)}  # type: ignore[arg-type]
    if unknown_keys:
        raise ValueError(f"unknown {what}: {', '.join(sorted(unknown_keys))}")
    return cls(**d)


# RunConfig fields that `nasbench-eval run` (and `sweep`) take as a flag of the same name
# (``batch_size`` -> ``--batch-size``); errors name a setting the way the user gave it.
# The others are set from Python, a sweep file or ``sweep --set KEY=VALUE``.
FLAG_FIELDS = frozenset({
    "method", "space", "dataset", "seed", "epochs", "layers", "channels", "batch_size",
    "train_portion", "w_lr", "w_lr_min", "alpha_lr", "lr_schedule", "lr_power", "lr_warmup",
    "hessian_every", "hessian_weight_decay", "max_steps_per_epoch", "oracle", "device",
    "memory_format", "precision", "data_loader", "compile", "cuda_graphs", "fused_edges", "out",
    "data_root"})


def setting_name(name: str) -> str:
    """How a user names the setting ``name`` of a run: its flag (``--batch-size``) where
    ``run`` has one, else ``setting 'name'`` (a sweep file's or ``--set``'s key)."""
    return "--" + name.replace("_", "-") if name in FLAG_FIELDS else f"setting '{name}'"


class ConfigError(NasbenchEvalError, ValueError):
    """A run setting that cannot be used. The message names the setting as the user gives
    it (:func:`setting_name`: ``--batch-size``, not ``batch_size``) and what it expects;
    ``field`` and ``problem`` let a sweep name it by where it came from instead."""

    def __init__(self, field_name: str, problem: str, name: str | None = None):
        self.field, self.problem = field_name, problem
        super().__init__(f"{name or setting_name(field_name)}: {problem}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class RunConfig:
    method: str = "darts"
    space: str = "s3"
    dataset: str = "digits"
    seed: int = 0
    epochs: int = 50
    layers: int = 8
    channels: int = 16
    batch_size: int | None = None  # None: the method's default, else 64
    train_portion: float | None = None  # None: the method's default, else 0.5
    # weights w: SGD, cosine annealing from w_lr to w_lr_min over the epochs
    w_lr: float = 0.025
    w_lr_min: float | None = None  # None: the method's default, else 0.001 (maxw 1e-4)
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # architecture parameters alpha: Adam
    alpha_lr: float = 3e-4
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    alpha_init_scale: float = 1e-3
    # w learning-rate schedule over epochs: "cosine" or "cosine-power" (sharpDARTS, power p);
    # None: the method's default, else "cosine" (maxw "cosine-power")
    lr_schedule: str | None = None
    lr_power: float = 2.0
    # linear warm-up epochs of cosine-power (sharpDARTS); None: the method's, else 0 (maxw 5)
    lr_warmup: int | None = None
    # lambda_max of the Hessian of L_val w.r.t. alpha every k epochs (0 = off); Lanczos
    # products per cycle; with the alpha weight-decay term (+wd I) as RobustDARTS
    hessian_every: int = 0
    hessian_iters: int = 20
    hessian_weight_decay: bool = True
    # anytime scoring of the derived architecture; "auto" (resolve.resolve_config): the first
    # available of oracles.AUTO_ORDER (the NAS-Bench-101 table on 1Shot1 spaces when its
    # cache exists)
    oracle: str = "auto"
    oracle_options: dict[str, Any] = field(default_factory=dict)
    # score every k epochs and always at the last (the other rows leave the score empty), to
    # bound an expensive oracle's share of a search
    oracle_every: int = 1
    bn_recalibration_batches: int = 20
    # method-specific options (validated by the method itself)
    method_options: dict[str, Any] = field(default_factory=dict)
    # cap steps per epoch (tests, quick looks); None = the whole search split
    max_steps_per_epoch: int | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    # execution (see execution.py): layout, autocast, CPU DataLoader or on-device batches
    memory_format: str = "auto"
    precision: str = "auto"
    data_loader: str = "device"
    compile: bool = False
    cuda_graphs: bool = False  # capture the step as a CUDA graph (execution.StepRunner)
    fused_edges: str = "auto"  # run DARTS cells source-fused (spaces/darts/fused_cell.py)
    device: str = "auto"
    out: str = DEFAULT_OUT
    data_root: str | None = None
    progress: bool = True
    # experiment-tracking sinks (nasbench_eval/sinks/: "tensorboard", "mlflow"); a list or a
    # comma-separated string; off by default. mlflow_uri: the MLflow tracking URI (None: a
    # file store in the run directory)
    log_to: list[str] = field(default_factory=list)
    mlflow_uri: str | None = None

    def __post_init__(self) -> None:
        self.alpha_betas = tuple(self.alpha_betas)  # type: ignore[assignment]
        self.log_to = parse_log_to(self.log_to)
        for name in ("epochs", "layers", "channels", "batch_size", "max_steps_per_epoch",
                     "hessian_iters"):
            value = getattr(self, name)
            if value is None and (name in GLOBAL_DEFAULTS or name == "max_steps_per_epoch"):
                continue
            if not _is_int(value) or value < 1:
                raise ConfigError(name, f"expected a positive integer, got {value!r}")
        for name in ("seed", "hessian_every", "lr_warmup"):
            value = getattr(self, name)
            if not (value is None and name == "lr_warmup") and (not _is_int(value)
                                                                  or value < 0):
                raise ConfigError(name, f"expected an integer >= 0, got {value!r}")
        if not _is_int(self.bn_recalibration_batches) or self.bn_recalibration_batches < 1:
            raise ConfigError("bn_recalibration_batches",
                              f"expected an integer >= 1 (the one-shot oracle re-estimates BN "
                              f"on them), got {self.bn_recalibration_batches!r}")
        if self.train_portion is not None and not (
                _is_number(self.train_portion) and 0.0 < self.train_portion < 1.0):
            raise ConfigError("train_portion", f"expected a number in (0, 1), got "
                                               f"{self.train_portion!r}")
        # learning rates and the like: torch's optimizers refuse negative or NaN ones
        # ("Invalid learning rate") without saying which; say it here, before any work
        for name, strict in (("w_lr", False), ("w_lr_min", False), ("alpha_lr", False),
                             ("lr_power", True), ("grad_clip", True), ("w_momentum", False),
                             ("w_weight_decay", False), ("alpha_weight_decay", False),
                             ("alpha_init_scale", False)):
            value = getattr(self, name)
            if value is None and name == "w_lr_min":
                continue
            if not _is_number(value) or not math.isfinite(value) or value < 0 or (
                    strict and value == 0):
                raise ConfigError(name, f"expected a finite number {'>' if strict else '>='} "
                                        f"0, got {value!r}")
        if not _is_int(self.oracle_every) or self.oracle_every < 1:
            raise ConfigError("oracle_every", f"expected a positive integer (score every k "
                                              f"epochs and at the last), got {self.oracle_every!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["alpha_betas"] = list(self.alpha_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        if "lr_warmup" not in d and d.get("lr_schedule") is not None:
            # issue 16: a config.json written before lr_warmup existed (its schedule is
            # concrete) ran without warm-up; maxw's new default must not apply to it
            d = {**d, "lr_warmup": 0}
        return from_fields(cls, d, "config fields")

    def fingerprint(self) -> str:
        """Hash of everything that changes what the run computes."""
        return fingerprint(identity_fields(self.to_dict()))

    def run_id(self) -> str:
        """Deterministic: the same settings always name the same run directory."""
        space = self.space.rsplit("/", 1)[-1].removesuffix(".toml")
        return f"{self.method}-{space}-{self.dataset}-seed{self.seed}-{self.fingerprint()}"
