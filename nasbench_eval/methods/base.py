"""The interface every search method implements, and the shared DARTS machinery.

The runner, the sweeps and the analysis only ever call :class:`Method`'s methods, so a new
method is a new module in this package (registered with :func:`register`), never a new
branch elsewhere. How an edge mixes its candidates is a :class:`Mixing` the method owns:
the supernet receives the mixed weights as a tensor argument.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..errors import NasbenchEvalError, unknown
from ..hessian import dominant_eigenvalue
from ..schedules import lr_at
from ..spaces.genotype import Genotype
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
    paper: ClassVar[str]

    def adapt_space(self, space: SearchSpace) -> SearchSpace:
        """The space this method searches, given the requested one: unchanged, restricted
        (e.g. MSR keeps only convolutions) or refused with a clear error."""

    def setup(self, supernet: nn.Module, space: SearchSpace, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        """Build optimizers and schedules; called once before the first step."""

    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        """One search step. Returns device tensors (no host sync): at least ``train_loss``,
        ``train_correct`` and ``train_count`` summed over the batch's examples."""

    def bind_data(self, streams: dict[str, Any]) -> None:
        """Receive the run's data streams (called once after ``setup``)."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Advance schedules after epoch ``epoch`` (0-based); returns values to log. A
        ``stop_reason`` entry (text) ends the search after this epoch (e.g. early stopping);
        the runner records it in summary.json and takes ``derive()`` as the final genotype."""

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


def method_class(name: str) -> type:
    from . import load_all

    load_all()
    if name not in METHODS:
        raise unknown("method", name, METHODS)
    return METHODS[name]


def create_method(name: str) -> Method:
    return method_class(name)()


def method_description(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


class GradientMethod:
    """Shared machinery of the DARTS family: alpha per cell type, SGD on w, Adam on alpha.

    A step is the reference order: one alpha step on a validation batch, then one w step on
    a training batch. Subclasses change :meth:`alpha_grads` (e.g. second order),
    :meth:`w_step_weights` (e.g. SDARTS perturbations) or :attr:`mixing` (e.g. Max-W).
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    """Method-specific options and their defaults; ``cfg.method_options`` overrides them.
    The CLI turns each into a ``--flag`` (``pgd_steps`` -> ``--pgd-steps``)."""
    option_help: ClassVar[dict[str, str]] = {}
    capturable: ClassVar[bool] = False
    """True when a step keeps no host-side state that changes from step to step, so a CUDA
    graph of it (fastpath.StepRunner, recaptured every epoch) replays the same computation."""
    config_defaults: ClassVar[dict[str, Any]] = {}
    """RunConfig settings this method defaults differently (only ``GLOBAL_DEFAULTS`` keys)."""

    def __init__(self) -> None:
        self.mixing: Mixing = SoftmaxMixing()
        self.epoch = 0
        self._autocast: Callable[[], AbstractContextManager[Any]] = nullcontext

    def make_capturable(self, flag: bool = True) -> None:
        """Adam's step counter and bias correction on the device (``capturable``), so a
        replayed graph counts steps. Set on every run (the flag is saved in checkpoints and
        a run may resume on another device or without capture), state moved accordingly."""
        opt = getattr(self, "alpha_opt", None)
        if opt is None:  # no architecture parameters (random-ws)
            return
        for group in opt.param_groups:
            group["capturable"] = flag
        for p, state in opt.state.items():
            if "step" in state and torch.is_tensor(state["step"]):
                state["step"] = state["step"].to(p.device if flag else "cpu", torch.float32)

    def set_execution(self, execution: Any, device: torch.device) -> None:
        """Adopt the run's precision: the supernet's forward runs under its autocast; the
        mixing weights (alpha's softmax) and the loss stay fp32 (see fastpath.py)."""
        self._autocast = lambda: execution.autocast(device)

    # ------------------------------------------------------------------ setup
    def adapt_space(self, space: SearchSpace) -> SearchSpace:
        return space

    def resolve_options(self, cfg: RunConfig) -> dict[str, Any]:
        """This method's options: declared defaults overridden by ``cfg.method_options``;
        an option the method does not declare is refused, naming the valid ones."""
        bad = set(cfg.method_options) - set(self.options)
        if bad:
            raise NasbenchEvalError(
                f"method '{self.name}' has no option(s) {', '.join(sorted(bad))}; "
                f"valid options: {', '.join(sorted(self.options)) or '(none)'}")
        return {**self.options, **cfg.method_options}

    def setup(self, supernet: nn.Module, space: SearchSpace, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        self.supernet, self.space, self.cfg = supernet, space, cfg
        self.steps_per_epoch = steps_per_epoch
        self.opts = self.resolve_options(cfg)
        device = next(supernet.parameters()).device
        self.alphas: ArchWeights = {
            cell: (cfg.alpha_init_scale * torch.randn(*shape, device=device)).requires_grad_()
            for cell, shape in supernet.arch_shapes().items()
        }
        self.w_params = [p for p in supernet.parameters() if p.requires_grad]
        self.w_opt = torch.optim.SGD(self.w_params, lr=cfg.w_lr, momentum=cfg.w_momentum,
                                     weight_decay=cfg.w_weight_decay)
        self._set_lr(0)
        self._last_val_batch: Batch | None = None
        self.alpha_opt = torch.optim.Adam(list(self.alphas.values()), lr=cfg.alpha_lr,
                                          betas=cfg.alpha_betas,
                                          weight_decay=cfg.alpha_weight_decay)

    def bind_data(self, streams: dict[str, Any]) -> None:
        """The run's data streams (``train``, ``val``, ``val_eval``), for methods that must
        change augmentation over the search (R-DARTS's cutout ramp) or score architectures
        on search-val themselves (random-ws). Most methods ignore them."""

    # ------------------------------------------------------------------ pieces
    def loss(self, batch: Batch, weights: ArchWeights, autocast: bool = True
             ) -> tuple[Tensor, Tensor]:
        x, y = batch
        with self._autocast() if autocast else nullcontext():
            logits = self.supernet(x, weights)
        if logits.dtype in (torch.bfloat16, torch.float16):
            logits = logits.float()  # the loss in fp32 (float64 models stay float64)
        return F.cross_entropy(logits, y), logits

    @property
    def lr(self) -> float:
        return self.w_opt.param_groups[0]["lr"]

    def _set_lr(self, epoch: int) -> None:
        c = self.cfg
        lr = lr_at(c.lr_schedule, epoch, c.epochs, c.w_lr, c.w_lr_min, c.lr_power)
        for group in self.w_opt.param_groups:
            group["lr"] = lr

    def hessian_eigenvalue(self, batch: Batch) -> float:
        """Dominant eigenvalue of d^2 L_val / d alpha^2 on ``batch`` (model in train mode, as
        RobustDARTS computes it; stochastic ops see the same random numbers in every HVP)."""
        self.supernet.train()
        keys = list(self.alphas)

        def loss(a: list[Tensor]) -> Tensor:
            dev = batch[0].device
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                torch.manual_seed(0)
                # fp32: curvature from bf16 rounding noise would be meaningless
                return self.loss(batch, self.mixing(dict(zip(keys, a))), autocast=False)[0]

        # BN running statistics must not move while we probe the curvature
        saved = {k: v.clone() for k, v in self.supernet.state_dict().items() if "running" in k}
        try:
            return dominant_eigenvalue(loss, list(self.alphas.values()), iters=self.cfg.hessian_iters)
        finally:
            self.supernet.load_state_dict(saved, strict=False)

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
        n = torch.full((), float(len(y)), device=y.device)  # a fill, not a blocking copy
        return {"train_loss": loss.detach() * n,
                "train_correct": (logits.detach().argmax(1) == y).sum().float(),
                "train_count": n}

    # ------------------------------------------------------------------ protocol
    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        self._last_val_batch = val_batch
        val_loss = self.alpha_step(train_batch, val_batch)
        out = self.w_step(train_batch)
        out["alpha_val_loss"] = val_loss * out["train_count"]
        return out

    def end_epoch(self, epoch: int) -> dict[str, float]:
        out = {"lr": self.lr}
        k = self.cfg.hessian_every
        # epochs 0, k, 2k, ... and the last, as RobustDARTS's report_freq_hessian
        if k and self.alphas and self._last_val_batch is not None and (
                epoch % k == 0 or epoch + 1 == self.cfg.epochs):
            out["hessian_eig"] = self.hessian_eigenvalue(self._last_val_batch)
        self.epoch = epoch + 1
        self._set_lr(self.epoch)
        return out

    def mixing_weights(self) -> ArchWeights:
        with torch.no_grad():
            return {k: v.detach().clone() for k, v in self.mixing(self.alphas).items()}

    def derive(self) -> Genotype:
        return self.space.derive(self.mixing_weights())

    def state_dict(self) -> dict[str, Any]:
        return {
            "alphas": {k: v.detach().cpu() for k, v in self.alphas.items()},
            "w_opt": self.w_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for k, v in state["alphas"].items():
                self.alphas[k].copy_(v)
        self.w_opt.load_state_dict(state["w_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.epoch = state["epoch"]
        self._set_lr(self.epoch)

