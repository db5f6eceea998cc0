"""SDARTS (Chen & Hsieh, ICML 2020): smooth the w step with perturbed architecture weights.

One iteration keeps the DARTS order: the alpha step on a validation batch uses the clean
softmax(alpha); the w step on the training batch then mixes with softmax(alpha) + delta,
projected back onto each edge's simplex by :func:`clip_to_simplex`. The perturbation only
moves the w update, alpha itself is never perturbed.

- SDARTS-RS: delta ~ U(-eps, eps) per entry.
- SDARTS-ADV: delta maximises the training loss of the same batch (PGD with sign steps in the
  L-inf ball of radius eps, model in eval mode, random start); the clean weights are used
  instead when the attack ends below the clean loss.

The radius ramps linearly over the search: eps_t = eps_min + (eps_max - eps_min) * t / T,
t the 0-based epoch and T the number of epochs (reference: 0.03 to 0.3).

All randomness comes from torch's global RNG (reseeded by the runner every epoch), and no
function here reads a tensor value on the host, so a step never syncs.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..options import Option, OptionError
from ..spaces.base import Space
from .base import ArchWeights, Batch, register
from .gradient import GradientMethod

PAPER = ("Chen & Hsieh, Stabilizing Differentiable Architecture Search via "
         "Perturbation-based Regularization, ICML 2020")

WeightsLoss = Callable[[ArchWeights], Tensor]
"""loss(weights) of mixing weights (one tensor per cell type) -> scalar tensor."""


# ----------------------------------------------------------------------------- pure pieces

def clip_to_simplex(w: Tensor) -> Tensor:
    """Project every row (one edge's candidates) back onto the simplex, as SDARTS' clip():
    clamp to [0, 1]; a row that is then all zero becomes one-hot at its pre-clamp argmax;
    finally each row is divided by its sum."""
    clamped = w.clamp(0.0, 1.0)
    total = clamped.sum(dim=-1, keepdim=True)
    one_hot = F.one_hot(w.argmax(dim=-1), w.shape[-1]).to(w.dtype)
    clamped = torch.where(total == 0, one_hot, clamped)
    return clamped / clamped.sum(dim=-1, keepdim=True)


def uniform_delta(like: Tensor, eps: float) -> Tensor:
    """Noise U(-eps, eps) per entry, from torch's global RNG (on ``like``'s device)."""
    return (2.0 * torch.rand_like(like) - 1.0) * eps


def random_perturbation(clean: ArchWeights, eps: float) -> ArchWeights:
    """SDARTS-RS: clip(clean + U(-eps, eps)) for every cell type."""
    return {k: clip_to_simplex(w + uniform_delta(w, eps)) for k, w in clean.items()}


def pgd_update(weights: Tensor, grad: Tensor, clean: Tensor, eps: float,
               step_size: float) -> tuple[Tensor, Tensor]:
    """One L-inf ascent step: w + step_size * sign(grad), its offset from ``clean`` clamped to
    [-eps, eps], then projected onto the simplex. Returns (clamped delta, projected weights);
    the projection's renormalisation may take the result slightly beyond eps."""
    delta = (weights + step_size * grad.sign() - clean).clamp(-eps, eps)
    return delta, clip_to_simplex(clean + delta)


def keep_if_stronger(perturbed: ArchWeights, clean: ArchWeights, perturbed_loss: Tensor,
                     clean_loss: Tensor) -> ArchWeights:
    """The perturbed weights where the attack did not lower the loss, else the clean ones
    (a device-side choice: no host sync)."""
    keep = perturbed_loss >= clean_loss
    return {k: torch.where(keep, perturbed[k], clean[k]) for k in clean}


def pgd_perturbation(loss_fn: WeightsLoss, clean: ArchWeights, eps: float, steps: int,
                     step_size: float | None = None) -> ArchWeights:
    """SDARTS-ADV: weights within eps of ``clean`` (before renormalisation) that maximise
    ``loss_fn`` by ``steps`` sign-gradient steps from a random start; ``clean`` itself when
    the result's loss is below the clean loss. ``step_size`` None: 2 * eps / steps.

    Only the gradient with respect to the weights is taken (``torch.autograd.grad``), so
    nothing accumulates in the ``.grad`` of any parameter ``loss_fn`` closes over.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    step = 2.0 * eps / steps if step_size is None else float(step_size)
    keys = list(clean)
    clean = {k: v.detach() for k, v in clean.items()}
    w = random_perturbation(clean, eps)
    for _ in range(steps):
        w_req = [w[k].clone().requires_grad_() for k in keys]
        with torch.enable_grad():
            loss = loss_fn(dict(zip(keys, w_req)))
            grads = torch.autograd.grad(loss, w_req, materialize_grads=True)
        with torch.no_grad():
            w = {k: pgd_update(wk.detach(), g, clean[k], eps, step)[1]
                 for k, wk, g in zip(keys, w_req, grads)}
    with torch.no_grad():
        return keep_if_stronger(w, clean, loss_fn(w), loss_fn(clean))


# ----------------------------------------------------------------------------- methods

class _PerturbedWStep(GradientMethod):
    """Shared by both SDARTS variants: the eps ramp and its logging."""

    options = {
        "eps_min": Option(0.03, float, "perturbation radius at the first epoch (ramps "
                          "linearly to eps_max)", minimum=0.0),
        "eps_max": Option(0.3, float, "perturbation radius the linear ramp reaches at epoch T "
                          "(the last epoch uses eps_min + (eps_max - eps_min) * (T-1)/T)",
                          minimum=0.0),
    }

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        self.eps_min = float(self.opts["eps_min"])
        self.eps_max = float(self.opts["eps_max"])
        if self.eps_min > self.eps_max:  # a relation between two options: checked here
            raise OptionError(
                f"method '{self.name}' needs --eps-min <= --eps-max, got eps_min="
                f"{self.eps_min}, eps_max={self.eps_max}")

    def eps_at(self, epoch: int) -> float:
        """Radius of epoch ``epoch`` (0-based): eps_min + (eps_max - eps_min) * epoch / T."""
        return self.eps_min + (self.eps_max - self.eps_min) * epoch / self.cfg.epochs

    @property
    def eps(self) -> float:
        """Radius the current epoch's w steps use."""
        return self.eps_at(self.epoch)

    def perturb(self, batch: Batch, clean: ArchWeights, eps: float) -> ArchWeights:
        raise NotImplementedError

    def w_step_weights(self, batch: Batch) -> ArchWeights:
        with torch.no_grad():
            clean = self.mixing(self.alphas)
        return self.perturb(batch, clean, self.eps)

    def end_epoch(self, epoch: int) -> dict[str, float]:
        eps = self.eps  # before the base class advances self.epoch
        return {**super().end_epoch(epoch), "eps": eps}


@register
class SdartsRS(_PerturbedWStep):
    """SDARTS-RS: the w step mixes with softmax(alpha) + U(-eps, eps), projected to the simplex."""

    name = "sdarts-rs"
    capturable = True
    paper = PAPER

    def perturb(self, batch: Batch, clean: ArchWeights, eps: float) -> ArchWeights:
        with torch.no_grad():
            return random_perturbation(clean, eps)


@register
class SdartsADV(_PerturbedWStep):
    """SDARTS-ADV: the w step mixes with PGD-worst-case weights within eps of softmax(alpha)."""

    name = "sdarts-adv"
    capturable = True
    paper = PAPER
    options = {
        **_PerturbedWStep.options,
        "pgd_steps": Option(7, int, "sign-gradient ascent steps of the attack (1 = FGSM-like, "
                            "cheaper)", minimum=1),
        "pgd_step_size": Option(None, float, "ascent step size (default: 2 * eps / pgd_steps)",
                                positive=True, none_ok=True),
    }

    def setup(self, supernet: nn.Module, space: Space, cfg: RunConfig,
              steps_per_epoch: int) -> None:
        super().setup(supernet, space, cfg, steps_per_epoch)
        self.pgd_steps = int(self.opts["pgd_steps"])
        size = self.opts["pgd_step_size"]
        self.pgd_step_size = None if size is None else float(size)

    def perturb(self, batch: Batch, clean: ArchWeights, eps: float) -> ArchWeights:
        """The attack on the training loss of ``batch``, with BN on its running statistics
        (eval mode); the supernet's mode is restored for the w step."""
        net = self.supernet
        was_training = net.training
        net.eval()
        try:
            return pgd_perturbation(lambda w: self.loss(batch, w)[0], clean, eps,
                                    self.pgd_steps, self.pgd_step_size)
        finally:
            net.train(was_training)
