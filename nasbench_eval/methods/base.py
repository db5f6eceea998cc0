"""The interface every search method implements, and the shared DARTS machinery.

The runner, the sweeps and the analysis only ever call :class:`Method`'s methods, so a new
method is a new module in this package (registered with :func:`register`), never a new
branch elsewhere. How an edge mixes its candidates is a :class:`Mixing` the method owns:
the supernet receives the mixed weights as a tensor argument.
"""
from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..errors import NasbenchEvalError, unknown
from ..spaces.genotype import Genotype, derive_genotype
from ..spaces.spec import SearchSpace

Batch = tuple[Tensor, Tensor]
ArchWeights = dict[str, Tensor]


class Mixing(Protocol):
    """Maps architecture parameters to the per-edge weights the supernet mixes with."""

    def __call__(self, alphas: ArchWeights) -> ArchWeights: ...


class SoftmaxMixing:
    """DARTS: softmax over each edge's candidates."""

    def __call__(self, alphas: ArchWeights) -> ArchWeights:
        return {k: F.softmax(a, dim=-1) for k, a in alphas.items()}


@runtime_checkable
class Method(Protocol):
    name: ClassVar[str]

    def setup(self, supernet: nn.Module, space: SearchSpace, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        """Build optimizers and schedules; called once before the first step."""

    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        """One search step. Returns device tensors (no host sync): at least ``train_loss``,
        ``train_correct`` and ``train_count`` summed over the batch's examples."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Advance schedules after epoch ``epoch`` (0-based); returns values to log."""

    def mixing_weights(self) -> ArchWeights:
        """The weights the supernet should mix with when it is evaluated (no perturbation)."""

    def derive(self) -> Genotype:
        """The current discrete architecture."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


METHODS: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a method available by its ``name`` everywhere."""
    if cls.name in METHODS:
        raise RuntimeError(f"method name '{cls.name}' registered twice")
    METHODS[cls.name] = cls
    return cls


def create_method(name: str) -> Method:
    from . import load_all

    load_all()
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]()


def method_description(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class GradientMethod:
    """Shared machinery of the DARTS family: alpha per cell type, SGD on w, Adam on alpha.

    A step is the reference order: one alpha step on a validation batch, then one w step on
    a training batch. Subclasses change :meth:`alpha_grads` (e.g. second order),
    :meth:`w_step_weights` (e.g. SDARTS perturbations) or :attr:`mixing` (e.g. Max-W).
    """

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    """Method-specific options and their defaults; ``cfg.method_options`` overrides them."""

    def __init__(self) -> None:
        self.mixing: Mixing = SoftmaxMixing()
        self.epoch = 0

    # ------------------------------------------------------------------ setup
    def setup(self, supernet: nn.Module, space: SearchSpace, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        self.supernet, self.space, self.cfg = supernet, space, cfg
        self.steps_per_epoch = steps_per_epoch
        bad = set(cfg.method_options) - set(self.options)
        if bad:
            raise NasbenchEvalError(
                f"method '{self.name}' has no option(s) {', '.join(sorted(bad))}; "
                f"valid options: {', '.join(sorted(self.options)) or '(none)'}")
        self.opts = {**self.options, **cfg.method_options}
        device = next(supernet.parameters()).device
        self.alphas: ArchWeights = {
            cell: (cfg.alpha_init_scale * torch.randn(*shape, device=device)).requires_grad_()
            for cell, shape in supernet.arch_shapes().items()
        }
        self.w_params = [p for p in supernet.parameters() if p.requires_grad]
        self.w_opt = torch.optim.SGD(self.w_params, lr=cfg.w_lr, momentum=cfg.w_momentum,
                                     weight_decay=cfg.w_weight_decay)
        self.w_sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_opt, T_max=cfg.epochs, eta_min=cfg.w_lr_min)
        self.alpha_opt = torch.optim.Adam(list(self.alphas.values()), lr=cfg.alpha_lr,
                                          betas=cfg.alpha_betas,
                                          weight_decay=cfg.alpha_weight_decay)

    # ------------------------------------------------------------------ pieces
    def loss(self, batch: Batch, weights: ArchWeights) -> tuple[Tensor, Tensor]:
        x, y = batch
        logits = self.supernet(x, weights)
        return F.cross_entropy(logits, y), logits

    @property
    def lr(self) -> float:
        return self.w_opt.param_groups[0]["lr"]

    def alpha_grads(self, train_batch: Batch, val_batch: Batch) -> tuple[list[Tensor], Tensor]:
        """First order: d L_val / d alpha at the current w."""
        loss, _ = self.loss(val_batch, self.mixing(self.alphas))
        grads = torch.autograd.grad(loss, list(self.alphas.values()), materialize_grads=True)
        return list(grads), loss.detach()

    def alpha_step(self, train_batch: Batch, val_batch: Batch) -> Tensor:
        grads, val_loss = self.alpha_grads(train_batch, val_batch)
        for a, g in zip(self.alphas.values(), grads):
            a.grad = g
        self.alpha_opt.step()
        return val_loss

    def w_step_weights(self, batch: Batch) -> ArchWeights:
        """Mixing weights for the w step; a perturbation-based method returns others."""
        with torch.no_grad():
            return self.mixing(self.alphas)

    def w_step(self, batch: Batch) -> dict[str, Tensor]:
        weights = {k: v.detach() for k, v in self.w_step_weights(batch).items()}
        self.w_opt.zero_grad(set_to_none=True)
        loss, logits = self.loss(batch, weights)
        loss.backward()
        nn.utils.clip_grad_norm_(self.w_params, self.cfg.grad_clip)
        self.w_opt.step()
        y = batch[1]
        n = torch.tensor(float(len(y)), device=y.device)
        return {"train_loss": loss.detach() * n,
                "train_correct": (logits.detach().argmax(1) == y).sum().float(),
                "train_count": n}

    # ------------------------------------------------------------------ protocol
    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        val_loss = self.alpha_step(train_batch, val_batch)
        out = self.w_step(train_batch)
        out["alpha_val_loss"] = val_loss * out["train_count"]
        return out

    def end_epoch(self, epoch: int) -> dict[str, float]:
        lr = self.lr
        self.w_sched.step()
        self.epoch = epoch + 1
        return {"lr": lr}

    def mixing_weights(self) -> ArchWeights:
        with torch.no_grad():
            return {k: v.detach().clone() for k, v in self.mixing(self.alphas).items()}

    def derive(self) -> Genotype:
        return derive_genotype(self.space, self.mixing_weights())

    def state_dict(self) -> dict[str, Any]:
        return {
            "alphas": {k: v.detach().cpu() for k, v in self.alphas.items()},
            "w_opt": self.w_opt.state_dict(),
            "w_sched": self.w_sched.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, v in state["alphas"].items():
                self.alphas[k].copy_(v)
        self.w_opt.load_state_dict(state["w_opt"])
        self.w_sched.load_state_dict(state["w_sched"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.epoch = state["epoch"]

