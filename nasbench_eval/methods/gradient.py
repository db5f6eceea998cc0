"""The DARTS alpha machinery: architecture parameters learned by gradient on search-val.

:class:`GradientMethod` adds to :class:`~nasbench_eval.methods.weights.WeightTraining` one
alpha tensor per cell type, Adam on them, the alpha step and lambda_max, the largest
eigenvalue of the Hessian of L_val in alpha (RobustDARTS's convention). A step is the
reference order: one alpha step on a validation batch, then one w step on a training batch.
Subclasses change :meth:`GradientMethod.alpha_grads` (e.g. second order),
:meth:`GradientMethod.w_step_weights` (e.g. SDARTS perturbations) or ``self.mixing`` (e.g.
Max-W, or a plugin's temperature softmax).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import RunConfig
from ..hessian import max_eigenvalue
from ..lazy_torch import F, nn, torch
from ..spaces.base import Genotype
from ..spaces.base import Space
from .base import ArchWeights, Batch, Mixing
from .weights import WeightTraining

if TYPE_CHECKING:
    from torch import Tensor


class SoftmaxMixing:
    """DARTS: softmax over each edge's candidates."""

    def __call__(self, alphas: ArchWeights) -> ArchWeights:
        return {k: F.softmax(a, dim=-1) for k, a in alphas.items()}


class GradientMethod(WeightTraining):
    """Shared machinery of the DARTS family: alpha per cell type, SGD on w, Adam on alpha."""

    def __init__(self) -> None:
        super().__init__()
        self.mixing: Mixing = SoftmaxMixing()
        """alphas -> mixing weights; every forward of this method mixes through it."""
        self.alphas: ArchWeights = {}

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        self.supernet = supernet
        device = next(supernet.parameters()).device
        # alphas are drawn before the w optimizer exists, as they always were (same RNG use)
        self.alphas = {
            cell: (cfg.alpha_init_scale * torch.randn(*shape, device=device)).requires_grad_()
            for cell, shape in supernet.arch_shapes().items()
        }
        super().setup(supernet, space, cfg, steps_per_epoch)
        self._last_val_batch: Batch | None = None
        self.alpha_opt = torch.optim.Adam(list(self.alphas.values()), lr=cfg.alpha_lr,
                                          betas=cfg.alpha_betas,
                                          weight_decay=cfg.alpha_weight_decay)

    def make_capturable(self, flag: bool = True) -> None:
        """Adam's step counter and bias correction on the device (``capturable``), so a
        replayed graph counts steps. Set on every run (the flag is saved in checkpoints and
        a run may resume on another device or without capture), state moved accordingly."""
        for group in self.alpha_opt.param_groups:
            group["capturable"] = flag
        for p, state in self.alpha_opt.state.items():
            if "step" in state and torch.is_tensor(state["step"]):
                state["step"] = state["step"].to(p.device if flag else "cpu", torch.float32)

    # ------------------------------------------------------------------ pieces
    def hessian_eigenvalue(self, batch: Batch, weight_decay: bool | None = None) -> float:
        """lambda_max: the largest (algebraic) eigenvalue of the Hessian of L_val w.r.t. all
        alphas on ``batch``, plus ``alpha_weight_decay`` (the decay term of the alpha
        gradient, +wd * I) when ``weight_decay`` (default: ``cfg.hessian_weight_decay``,
        on). This is RobustDARTS's number (``max(eigvals)`` of its ``Analyzer`` Hessian). Model
        in train mode as the reference; stochastic ops see the same random numbers in every
        Hessian-vector product; BN running statistics are restored afterwards."""
        self.supernet.train()
        keys = list(self.alphas)
        if weight_decay is None:
            weight_decay = self.cfg.hessian_weight_decay

        def loss(a: list[Tensor]) -> Tensor:
            dev = batch[0].device
            with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
                torch.manual_seed(0)
                # fp32: curvature from bf16 rounding noise would be meaningless
                return self.loss(batch, self.mixing(dict(zip(keys, a))), autocast=False)[0]

        # BN running statistics must not move while we probe the curvature
        saved = {k: v.clone() for k, v in self.supernet.state_dict().items() if "running" in k}
        try:
            wd = self.cfg.alpha_weight_decay if weight_decay else 0.0
            return max_eigenvalue(loss, list(self.alphas.values()), weight_decay=wd,
                                  iters=self.cfg.hessian_iters)
        finally:
            self.supernet.load_state_dict(saved, strict=False)

    def hessian_metrics(self, batch: Batch) -> dict[str, float]:
        """The metrics row's curvature columns: ``hessian_eig`` (lambda_max, see
        :meth:`hessian_eigenvalue`) and ``hessian_eig_wd``, the weight-decay term it includes
        (0.0 when left out). Run directories written before issue 16 lack ``hessian_eig_wd``:
        their ``hessian_eig`` is the eigenvalue of largest magnitude, without the term."""
        wd = self.cfg.alpha_weight_decay if self.cfg.hessian_weight_decay else 0.0
        return {"hessian_eig": self.hessian_eigenvalue(batch), "hessian_eig_wd": wd}

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

    # ------------------------------------------------------------------ protocol
    def step(self, train_batch: Batch, val_batch: Batch) -> dict[str, Tensor]:
        self._last_val_batch = val_batch
        val_loss = self.alpha_step(train_batch, val_batch)
        out = self.w_step(train_batch)
        out["alpha_val_loss"] = val_loss * out["train_count"]
        return out

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        out = super().end_epoch(epoch)  # {"lr": ...}, next epoch's learning rate
        k = self.cfg.hessian_every
        # epochs 0, k, 2k, ... and the last, as RobustDARTS's report_freq_hessian
        if k and self.alphas and self._last_val_batch is not None and (
                epoch % k == 0 or epoch + 1 == self.cfg.epochs):
            out.update(self.hessian_metrics(self._last_val_batch))
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
        super().load_state_dict(state)  # w optimizer, epoch, learning rate
        self.alpha_opt.load_state_dict(state["alpha_opt"])
