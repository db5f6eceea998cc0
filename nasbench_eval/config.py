"""Every knob of a search run, in one serialisable dataclass.

The defaults are the DARTS / RobustDARTS / SDARTS search setting (shared/reference), so a run
that only names method, space and dataset reproduces the papers' protocol.

Plain data: this module imports no method, oracle or space. Settings left open (``None``,
``oracle="auto"``) are filled once, by the orchestration layer
(:func:`nasbench_eval.resolve.resolve_config`), before the run id is taken.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

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

# Fields that say where or how a run executes, not what it computes; excluded from the run id
# (and from the analysis's "setting" of a run). The execution settings (execution.py) are here
# too: they change speed, not results.
EXECUTION_FIELDS = frozenset({"out", "device", "progress", "data_root", "memory_format",
                              "precision", "data_loader", "compile", "cuda_graphs",
                              "fused_edges"})


def identity_fields(config: Mapping[str, Any], drop: frozenset[str] = frozenset()
                    ) -> dict[str, Any]:
    """The settings of a config dict that identify what a run computes: without the execution
    fields, without fields at their neutral value (added after run ids existed), and without
    ``drop`` (e.g. the seed, for the analysis's "same setting"). The run id hashes this, and
    the analysis groups runs by it, so a config.json written before a field existed and one
    written after with the neutral value are the same setting."""
    return {k: v for k, v in config.items() if k not in EXECUTION_FIELDS and k not in drop
            and not (k in _NEUTRAL_FIELDS and v == _NEUTRAL_FIELDS[k])}


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
    out: str = "results"
    data_root: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        self.alpha_betas = tuple(self.alpha_betas)  # type: ignore[assignment]
        for name in ("epochs", "layers", "channels", "batch_size"):
            value = getattr(self, name)
            if value is None and name in GLOBAL_DEFAULTS:
                continue
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.train_portion is not None and not 0.0 < self.train_portion < 1.0:
            raise ValueError(f"train_portion must be in (0, 1), got {self.train_portion}")
        if self.max_steps_per_epoch is not None and (
                not isinstance(self.max_steps_per_epoch, int) or self.max_steps_per_epoch < 1):
            raise ValueError(f"max_steps_per_epoch must be a positive integer or None, got "
                             f"{self.max_steps_per_epoch!r}")
        if not isinstance(self.bn_recalibration_batches, int) or self.bn_recalibration_batches < 1:
            raise ValueError(f"bn_recalibration_batches must be >= 1 (the one-shot oracle "
                             f"re-estimates BN on them), got {self.bn_recalibration_batches!r}")
        if not isinstance(self.oracle_every, int) or self.oracle_every < 1:
            raise ValueError(f"oracle_every must be a positive integer (score every k epochs "
                             f"and at the last), got {self.oracle_every!r}")
        if self.hessian_every < 0:
            raise ValueError(f"hessian_every must be >= 0, got {self.hessian_every}")
        if self.lr_warmup is not None and (not isinstance(self.lr_warmup, int)
                                           or self.lr_warmup < 0):
            raise ValueError(f"lr_warmup must be an integer >= 0, got {self.lr_warmup!r}")

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
