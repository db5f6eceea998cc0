"""The evaluation stage: train a derived architecture from scratch and record its test error.

A search returns a genotype; the papers' headline numbers are the test error of that
genotype's *discrete* network trained from scratch at a larger size (DARTS: 20 cells, 36
channels, 600 epochs on CIFAR-10). This module builds that network
(:class:`DiscreteNetwork`: normal and reduction cells from the genotype, drop-path that never
drops identity edges, an auxiliary head at 2/3 depth), trains it with the DARTS evaluation
protocol (:class:`EvalConfig`) and writes ``evaluation.json`` (+ ``evaluation_metrics.csv``,
``evaluation_checkpoint.pt``) beside the run it evaluated, or in a directory of its own for
a genotype given as JSON. See ``docs/evaluation.md``.

Like a search run, an evaluation checkpoints after every epoch and resumes with identical
numbers: every epoch's randomness (batch order, crops, flips, cutout, drop-path masks) is
derived from (seed, epoch) with the runner's :func:`~nasbench_eval.runner.derived_seed`.

NAS-Bench-101 genotypes (anything with ``to_model_spec()``) are trained through
``nasbench_pytorch``'s ``Network`` (stem, 3 stacks of cells, max-pool between stacks), with
NAS-Bench-101's optimiser settings as defaults; they have no auxiliary head and no drop-path.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .data import BatchStream, Dataset, load_dataset
from .errors import NasbenchEvalError, RunDirError
from .runner import atomic_write, derived_seed, environment, read_summary, resolve_device
from .schedules import cosine
from .spaces.darts.genotype import Genotype
from .spaces.darts.ops import FactorizedReduce, Identity, ReLUConvBN, build_op, op_spec

EpochCallback = Callable[[int, dict[str, Any]], None]

EVALUATION_FILE = "evaluation.json"
METRICS_FILE = "evaluation_metrics.csv"
CHECKPOINT_FILE = "evaluation_checkpoint.pt"

DARTS_FAMILY = "darts-cell"
NB101_FAMILY = "nb101-cell"


# =============================================================================== network

def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Zero whole examples of ``x`` with probability ``p`` and rescale the rest by 1/(1-p).

    The identity when ``p == 0`` or outside training (the expectation is unchanged, so eval
    mode needs no correction). The mask draws from the torch RNG, which the training loop
    seeds from (seed, epoch).
    """
    if not training or p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], *([1] * (x.dim() - 1)), device=x.device,
                       dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class DiscreteCell(nn.Module):
    """One normal or reduction cell of a genotype: each node sums two ops of earlier states.

    Preprocessing follows the search cell: ``s0`` through FactorizedReduce when the previous
    cell reduced (its resolution is twice ``s1``'s), else a 1x1 ReLUConvBN; ``s1`` through a
    1x1 ReLUConvBN. In a reduction cell the ops reading the two cell inputs use stride 2.
    """

    def __init__(self, pairs: tuple[tuple[str, int], ...], concat: tuple[int, ...],
                 c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c, affine=True) if reduction_prev \
            else ReLUConvBN(c_pp, c, 1, 1, 0, affine=True)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=True)
        self.sources = [src for _, src in pairs]
        self.ops = nn.ModuleList(
            build_op(op, c, 2 if reduction and src < 2 else 1, affine=True, search=False)
            for op, src in pairs)
        # drop-path never touches an identity edge (DARTS: skip_connect at stride 1)
        self.droppable = [not isinstance(op, Identity) for op in self.ops]
        self.concat = tuple(concat)
        self.out_channels = c * len(self.concat)
        self.drop_prob = 0.0

    def forward(self, s0: Tensor, s1: Tensor) -> Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(len(self.ops) // 2):
            total = None
            for k in (2 * node, 2 * node + 1):
                h = self.ops[k](states[self.sources[k]])
                if self.droppable[k]:
                    h = drop_path(h, self.drop_prob, self.training)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary classifier, applied to the output of the cell at 2/3 depth.

    ReLU, 5x5 average pool with stride 3 (8x8 -> 2x2, padding excluded), 1x1 conv to 128, BN,
    ReLU, 2x2 conv to 768, BN, ReLU, linear. The pool is the one part that depends on the
    image size: on the 8x8 maps of 32x32 inputs it is exactly DARTS's; on any other size
    (digits' 2x2, Fashion-MNIST's 7x7, ...) an adaptive average pool to 2x2 takes its place,
    so the 2x2 conv always sees the 2x2 map it was designed for.
    """

    def __init__(self, c_in: int, num_classes: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(x)
        if tuple(x.shape[-2:]) == (8, 8):
            x = F.avg_pool2d(x, 5, stride=3, padding=0, count_include_pad=False)
        else:
            x = F.adaptive_avg_pool2d(x, 2)
        return self.classifier(self.conv(x).flatten(1))


def validate_genotype(genotype: Genotype) -> None:
    """Refuse a genotype that cannot build: unknown ops, inputs from later nodes, bad concat."""
    for cell in ("normal", "reduce"):
        pairs = genotype.cell(cell)
        concat = getattr(genotype, f"{cell}_concat")
        if not pairs or len(pairs) % 2:
            raise NasbenchEvalError(
                f"genotype {cell} cell: needs two (op, input) pairs per node, got {len(pairs)} pairs")
        for k, (op, src) in enumerate(pairs):
            op_spec(op)  # unknown op -> error listing the valid ones
            node = k // 2
            if not 0 <= src < node + 2:
                raise NasbenchEvalError(
                    f"genotype {cell} cell: pair {k} ({op}, {src}) reads state {src}, but node "
                    f"{node} can only read states 0..{node + 1}")
        n_states = 2 + len(pairs) // 2
        if not concat or any(not 0 <= i < n_states for i in concat):
            raise NasbenchEvalError(
                f"genotype {cell}_concat {list(concat)} must name states in 0..{n_states - 1}")


class DiscreteNetwork(nn.Module):
    """The discrete network of a DARTS-family genotype (DARTS's ``NetworkCIFAR``).

    Stem (3x3 conv to 3C, BN), ``layers`` cells with reductions at ``layers // 3`` and
    ``2 * layers // 3`` (channels double there), global average pool, linear. With
    ``auxiliary`` an :class:`AuxiliaryHead` reads the output of cell ``2 * layers // 3``.

    ``forward`` returns ``(logits, aux_logits)``; ``aux_logits`` is ``None`` in eval mode or
    without a head (the head is then not computed at all). ``drop_path_prob`` (settable; the
    training loop ramps it) is the probability of dropping a non-identity edge in training.
    """

    def __init__(self, genotype: Genotype, C: int, layers: int, num_classes: int,
                 in_channels: int = 3, auxiliary: bool = False, drop_path: float = 0.0,
                 stem_multiplier: int = 3):
        super().__init__()
        if layers < 1 or C < 1:
            raise NasbenchEvalError(f"layers and channels must be positive, got {layers} / {C}")
        validate_genotype(genotype)
        self.genotype = genotype
        self.layers = layers
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c_curr))
        reductions = {layers // 3, 2 * layers // 3} if layers >= 3 else set()
        self.aux_index = 2 * layers // 3
        c_pp, c_p, c = c_curr, c_curr, C
        reduction_prev = False
        c_aux = c_p
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            cell_type = "reduce" if reduction else "normal"
            cell = DiscreteCell(genotype.cell(cell_type), getattr(genotype, f"{cell_type}_concat"),
                                c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.out_channels
            if i == self.aux_index:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.drop_path_prob = drop_path

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self._drop_path_prob = float(p)
        for cell in self.cells:
            cell.drop_prob = float(p)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        return self.classifier(self.pool(s1).flatten(1)), aux


class NB101Network(nn.Module):
    """NAS-Bench-101's network for one cell spec, through ``nasbench_pytorch`` (``Network``).

    ``layers`` cells = 3 stacks of ``layers // 3``; ``C`` = stem channels (128 in the
    benchmark). Returns ``(logits, None)`` like :class:`DiscreteNetwork`; no auxiliary head,
    no drop-path (NAS-Bench-101 trains without either).
    """

    def __init__(self, spec: Any, C: int, layers: int, num_classes: int, in_channels: int = 3):
        super().__init__()
        try:
            from nasbench_pytorch.model import Network
        except ImportError:  # pragma: no cover - it is a dependency
            raise NasbenchEvalError("evaluating a NAS-Bench-101 cell needs the nasbench_pytorch "
                                    "package (pip install nasbench_pytorch)") from None
        if layers < 3 or layers % 3:
            raise NasbenchEvalError(f"a NAS-Bench-101 network has 3 stacks: layers must be a "
                                    f"multiple of 3, got {layers}")
        matrix = [[int(v) for v in row] for row in _as_rows(spec.matrix)]
        ops = [str(o) for o in spec.ops]
        self.net = Network((matrix, ops), num_labels=num_classes, in_channels=in_channels,
                           stem_out_channels=C, num_stacks=3, num_modules_per_stack=layers // 3,
                           momentum=0.1)
        self.auxiliary_head = None
        self.drop_path_prob = 0.0

    def forward(self, x: Tensor) -> tuple[Tensor, None]:
        return self.net(x), None


def _as_rows(matrix: Any) -> list[list[Any]]:
    if hasattr(matrix, "tolist"):
        return matrix.tolist()
    return [list(r) for r in matrix]


# ============================================================================ counting

def count_parameters(model: nn.Module) -> dict[str, int]:
    """``params``: every parameter except the auxiliary head's (the papers' convention: DARTS
    counts ``named_parameters`` without "auxiliary"); ``params_with_auxiliary``: all."""
    total = sum(p.numel() for p in model.parameters())
    head = getattr(model, "auxiliary_head", None)
    aux = sum(p.numel() for p in head.parameters()) if head is not None else 0
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

# Per dataset (and space) defaults; see docs/evaluation.md for the reasoning.
_PAPER = {"epochs": 600, "layers": 20, "channels": 36, "batch_size": 96, "cutout": 16}
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "cifar10": dict(_PAPER),
    "cifar100": dict(_PAPER),
    "svhn": dict(_PAPER),
    # small data sets: cutout of half the image side (16 of CIFAR's 32), a short schedule
    "fashion-mnist": {"epochs": 50, "layers": 8, "channels": 16, "batch_size": 96, "cutout": 14},
    "digits": {"epochs": 50, "layers": 8, "channels": 16, "batch_size": 64, "cutout": 4},
    "synthetic": {"epochs": 10, "layers": 5, "channels": 8, "batch_size": 32, "cutout": 8},
}
ROBUSTDARTS_SPACES = {"s1", "s2", "s3", "s4"}
"""On these spaces CIFAR-100 and SVHN are evaluated at 8 cells / 16 channels (RobustDARTS)."""
SMALL_EVAL = {"layers": 8, "channels": 16}

DARTS_TRAINING = {"optimizer": "sgd", "lr": 0.025, "momentum": 0.9, "weight_decay": 3e-4,
                  "drop_path": 0.2, "auxiliary": 0.4}
# NAS-Bench-101's protocol (as nasbench_pytorch's trainer defaults it): RMSProp, 108 epochs,
# batch 256, 3 stacks x 3 cells, 128 stem channels, standard augmentation (no cutout).
NB101_TRAINING = {"optimizer": "rmsprop", "lr": 0.2, "momentum": 0.9, "weight_decay": 1e-4,
                  "drop_path": 0.0, "auxiliary": 0.0, "epochs": 108, "layers": 9,
                  "channels": 128, "batch_size": 256, "cutout": 0}

_EXECUTION_FIELDS = {"device", "out", "data_root", "progress"}


@dataclass
class EvalConfig:
    """Every knob of one evaluation; ``None`` = the default of the dataset / space family.

    :meth:`resolved` fills them in: CIFAR-10 gets the DARTS protocol (20 cells, 36 channels,
    600 epochs, batch 96, SGD 0.025 cosine to 0, momentum 0.9, wd 3e-4, clip 5, cutout 16,
    drop-path 0.2 ramped linearly, auxiliary weight 0.4); CIFAR-100/SVHN the same but 8 cells
    / 16 channels when the genotype comes from S1–S4; NAS-Bench-101 cells NAS-Bench-101's.
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
    out: str = "results"
    data_root: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "layers", "channels", "batch_size", "max_steps_per_epoch"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if self.cutout is not None and self.cutout < 0:
            raise ValueError(f"cutout must be >= 0, got {self.cutout}")
        if self.drop_path is not None and not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if self.auxiliary is not None and self.auxiliary < 0:
            raise ValueError(f"auxiliary must be >= 0, got {self.auxiliary}")
        if self.optimizer is not None and self.optimizer not in ("sgd", "rmsprop"):
            raise ValueError(f"optimizer must be sgd or rmsprop, got {self.optimizer!r}")

    def resolved(self, family: str = DARTS_FAMILY, space: str | None = None) -> EvalConfig:
        """Fill every ``None`` from the defaults of the dataset, the space and its family."""
        if self.dataset not in DATASET_DEFAULTS:
            from .data import DATASETS
            from .errors import unknown

            raise unknown("dataset", self.dataset, DATASETS)
        if family == NB101_FAMILY:
            defaults = dict(NB101_TRAINING)
            if self.drop_path or self.auxiliary:
                raise NasbenchEvalError(
                    "NAS-Bench-101 networks are trained without drop-path and auxiliary head; "
                    "leave --drop-path/--auxiliary unset or 0")
        else:
            defaults = {**DATASET_DEFAULTS[self.dataset], **DARTS_TRAINING}
            if self.dataset in ("cifar100", "svhn") and space in ROBUSTDARTS_SPACES:
                defaults.update(SMALL_EVAL)
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalConfig:
        known = {f.name for f in fields(cls)}
        bad = set(d) - known
        if bad:
            raise ValueError(f"unknown evaluation settings: {', '.join(sorted(bad))}")
        return cls(**d)


# ============================================================================ genotypes

@dataclass(frozen=True)
class _SpecGenotype:
    """A bare NAS-Bench-101 cell given as ``{"matrix": ..., "ops": ...}`` JSON."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def to_model_spec(self) -> _SpecGenotype:
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"matrix": [list(r) for r in self.matrix], "ops": list(self.ops)}


def family_of(genotype: Any) -> str:
    return NB101_FAMILY if hasattr(genotype, "to_model_spec") else DARTS_FAMILY


def genotype_from_json(text_or_path: str | dict, space: str | None = None) -> Any:
    """A genotype from JSON text, a path to a JSON file, or an already parsed dict.

    Accepted: a DARTS genotype dict (``normal``, ``reduce``, ``*_concat``), a NAS-Bench-101
    cell (``matrix``, ``ops``; also inside an ``nb101-cell`` genotype's ``nb101`` key), or a document holding one under ``genotype`` (a line of
    ``genotypes.jsonl``) or ``final_genotype`` (``summary.json``). With ``space`` (a space
    name or spec path) the space's own ``genotype_from_dict`` parses it.
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
    try:
        if "normal" in d and "reduce" in d:
            return Genotype.from_dict({"normal_concat": list(range(2, 2 + len(d["normal"]) // 2)),
                                       "reduce_concat": list(range(2, 2 + len(d["reduce"]) // 2)),
                                       **d})
        if isinstance(d.get("nb101"), dict):  # an nb101-cell genotype's to_dict()
            d = d["nb101"]
        if "matrix" in d and "ops" in d:
            return _SpecGenotype(tuple(tuple(int(v) for v in r) for r in d["matrix"]),
                                 tuple(str(o) for o in d["ops"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise NasbenchEvalError(f"malformed genotype JSON: {exc}") from None
    raise NasbenchEvalError(
        "unrecognised genotype JSON: expected a DARTS genotype (normal, normal_concat, reduce, "
        "reduce_concat), a NAS-Bench-101 cell (matrix, ops), or a document with 'genotype' / "
        "'final_genotype'; pass --space to parse another family's genotype")


def genotype_to_dict(genotype: Any) -> dict[str, Any]:
    if hasattr(genotype, "to_dict"):
        return genotype.to_dict()
    spec = genotype.to_model_spec()
    return {"matrix": _as_rows(spec.matrix), "ops": list(spec.ops)}


def build_network(genotype: Any, cfg: EvalConfig, num_classes: int, in_channels: int
                  ) -> nn.Module:
    """The network of ``genotype`` at the (resolved) settings of ``cfg``."""
    if family_of(genotype) == NB101_FAMILY:
        return NB101Network(genotype.to_model_spec(), cfg.channels, cfg.layers, num_classes,
                            in_channels)
    return DiscreteNetwork(genotype, cfg.channels, cfg.layers, num_classes, in_channels,
                           auxiliary=bool(cfg.auxiliary), drop_path=0.0)


# ============================================================================= the loop

@dataclass
class _Source:
    """Where the genotype came from and where the evaluation's files go."""

    genotype: Any
    space: str | None
    out_dir: Path | None  # the evaluated run's directory; None: a new one under cfg.out
    run: dict[str, Any] | None


def _source_from_run(run_dir: str | Path) -> _Source:
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    if summary is None:
        raise RunDirError(f"{run_dir} is not a run directory (no summary.json)")
    if summary.get("status") != "finished":
        raise RunDirError(
            f"{run_dir}: the search has status '{summary.get('status')}', not 'finished'; "
            f"resume it first (nasbench-eval run ... --resume), or evaluate a genotype with "
            f"--genotype")
    if not summary.get("final_genotype"):
        raise RunDirError(f"{run_dir}: summary.json has no final genotype")
    from .spaces import load_space

    # the space as the run named it (a bundled name or a spec path), else its recorded spec
    candidates: list[str] = []
    config_path = run_dir / "config.json"
    if config_path.exists():
        doc = json.loads(config_path.read_text())
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


def _fingerprint(cfg: EvalConfig, genotype: Any) -> str:
    d = {k: v for k, v in cfg.to_dict().items() if k not in _EXECUTION_FIELDS}
    d["genotype"] = genotype_to_dict(genotype)
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))


def _write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


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
        if isinstance(model, DiscreteNetwork):
            model.drop_path_prob = p
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
        if cfg.auxiliary and isinstance(model, DiscreteNetwork):
            row["train_aux_loss"] = float(aux_sum) / n
        if _finite(row["train_loss"]) and _finite(row.get("train_aux_loss", 0.0)):
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
        if not (isinstance(genotype, Genotype) or hasattr(genotype, "to_model_spec")):
            genotype = genotype_from_json(genotype, space)
        source = _Source(genotype, space and Path(str(space)).stem, None, None)
    if cfg is None:
        settings = {k: v for k, v in settings.items() if v is not None}
        settings.setdefault("dataset", (source.run or {}).get("dataset") or "cifar10")
        cfg = EvalConfig(**settings)
    elif settings:
        cfg = EvalConfig.from_dict({**cfg.to_dict(), **settings})
    family = family_of(source.genotype)
    cfg = cfg.resolved(family, source.space)
    if family == DARTS_FAMILY:
        validate_genotype(source.genotype)
    fp = _fingerprint(cfg, source.genotype)
    eval_id = f"eval-{cfg.dataset}-seed{cfg.seed}-{fp}"
    out_dir = source.out_dir if source.out_dir is not None else Path(cfg.out) / eval_id
    doc_path, ckpt_path = out_dir / EVALUATION_FILE, out_dir / CHECKPOINT_FILE

    previous = json.loads(doc_path.read_text()) if doc_path.exists() else None
    if previous is not None:
        if previous.get("fingerprint") != fp:
            raise RunDirError(
                f"{out_dir} already holds an evaluation with other settings (id "
                f"{previous.get('eval_id')}); delete {EVALUATION_FILE}, {METRICS_FILE} and "
                f"{CHECKPOINT_FILE} there to replace it, or evaluate with its settings")
        if not resume:
            raise RunDirError(
                f"{out_dir} already holds this evaluation (status: {previous.get('status')}); "
                f"pass --resume (resume=True) to continue it")
        if previous.get("status") in ("finished", "diverged"):
            return out_dir

    device = resolve_device(cfg.device)
    data = load_dataset(cfg.dataset, cfg.data_root, **cfg.dataset_options)
    trainer = _Trainer(cfg, source.genotype, data, device)
    counts = count_parameters(trainer.model)
    input_shape = (data.channels, *data.image_size)
    macs = count_macs(trainer.model, input_shape)
    out_dir.mkdir(parents=True, exist_ok=True)

    history: list[dict[str, Any]] = []
    start_epoch, wall = 0, 0.0
    env = environment(device)
    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state.get("fingerprint") != fp:
            raise RunDirError(f"{ckpt_path} belongs to another evaluation; delete it to start over")
        trainer.model.load_state_dict(state["model"])
        trainer.opt.load_state_dict(state["optimizer"])
        history, start_epoch, wall = state["history"], state["epoch"], state["wall_time_s"]

    doc: dict[str, Any] = {
        "eval_id": eval_id, "fingerprint": fp, "status": "running",
        "family": family, "space": source.space, "source_run": source.run,
        "genotype": genotype_to_dict(source.genotype), "genotype_str": str(source.genotype),
        "dataset": cfg.dataset, "seed": cfg.seed, "epochs": cfg.epochs,
        "settings": cfg.to_dict(), "input_shape": list(input_shape),
        "num_classes": data.num_classes, **counts, "params_M": round(counts["params"] / 1e6, 4),
        "macs": macs, "steps_per_epoch": trainer.steps_per_epoch,
        "environment": env,
    }
    if previous is not None and start_epoch > 0:  # keep the original record, note the resumption
        doc["environment"] = previous.get("environment", env)
        doc["resumed"] = previous.get("resumed", []) + [{"at_epoch": start_epoch,
                                                         "environment": env}]

    def finish(status: str, **extra: Any) -> None:
        errors = [r["test_error"] for r in history if "test_error" in r]
        last = history[-1] if history else {}
        doc.update(status=status, epochs_done=len(history), wall_time_s=round(wall, 3),
                   final_test_error=last.get("test_error"),
                   final_train_error=last.get("train_error"),
                   best_test_error=min(errors) if errors else None,
                   curve=history, **extra)
        atomic_write(doc_path, json.dumps(doc, indent=2) + "\n")

    if cfg.progress:
        print(f"{eval_id}: {family} genotype on {cfg.dataset}, {cfg.layers} cells x "
              f"{cfg.channels} channels, {counts['params'] / 1e6:.3f}M params, "
              f"{macs / 1e6:.1f}M MACs, {trainer.steps_per_epoch} steps/epoch, device {device} "
              f"-> {out_dir}", file=sys.stderr)
    finish("running")
    try:
        for epoch in range(start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            row = trainer.epoch(epoch)
            wall += time.perf_counter() - t0
            bad = {k: v for k, v in row.items() if k.endswith("_loss") and not _finite(v)}
            if bad:
                finish("diverged", diverged_at_epoch=epoch,
                       error=f"non-finite loss in epoch {epoch}: "
                             + ", ".join(f"{k}={v}" for k, v in bad.items()))
                return out_dir
            row["wall_time_s"] = round(wall, 3)
            history.append(row)
            torch.save({"epoch": epoch + 1, "model": trainer.model.state_dict(),
                        "optimizer": trainer.opt.state_dict(), "history": history,
                        "wall_time_s": wall, "fingerprint": fp}, out_dir / (CHECKPOINT_FILE + ".tmp"))
            os.replace(out_dir / (CHECKPOINT_FILE + ".tmp"), ckpt_path)
            _write_rows(out_dir / METRICS_FILE, history)
            finish("running")
            if cfg.progress:
                print(f"epoch {epoch + 1}/{cfg.epochs}  lr {row['lr']:.5f}  train_err "
                      f"{row['train_error']:.4f}  test_err {row['test_error']:.4f}  "
                      f"({row['epoch_time_s']:.1f}s)", file=sys.stderr)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
    except KeyboardInterrupt:
        finish("interrupted")
        raise
    finish("finished")
    return out_dir


def read_evaluation(path: str | Path) -> dict[str, Any] | None:
    """``evaluation.json`` of a run or evaluation directory (or the file itself), if any."""
    p = Path(path)
    if p.is_dir():
        p = p / EVALUATION_FILE
    return json.loads(p.read_text()) if p.exists() else None
